"""nbgrader configuration for this course directory (Module 20 labs).

Run nbgrader commands from this directory: ``nbgrader generate_assignment lab2_realtime_orders``.
JupyterHub deployments override ``Exchange.root`` and ``CourseDirectory.course_id`` in the
system-wide config; see docs/instructor_guide.md.
"""

import os
from pathlib import Path

from coursekit.grading import COURSE_ENV, GRADER_KERNEL, jupyter_data_dir

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.root = str(Path(__file__).resolve().parent)
c.CourseDirectory.course_id = "m20-emerging"
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# a lab's data files beside its notebook are released with it; never caches or checkpoints
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*",
                            "catalog", "test_order_facts.py"]  # what Lab 1 writes as it runs

# Execution: Spark and Kafka start-up takes tens of seconds, so a cell gets 120 s; an endless loop
# costs at most that. Autograding runs each submission in the course's grader kernel: in a bubblewrap
# sandbox that sees only the system, the course package and its own working copy (read-only but for
# that copy and a private /tmp), with an allow-listed environment, and with its memory capped from
# outside at COURSEKIT_GRADER_MEMORY_MB (default 1400) (coursekit.graderkernel, coursekit.sandbox).
os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (jupyter_data_dir(), os.environ.get("JUPYTER_PATH")) if p)
# the grader finds this directory's hidden tests and secret through it (the kernel never sees either)
os.environ[COURSE_ENV] = str(Path(__file__).resolve().parent)
c.ExecutePreprocessor.timeout = 120
c.ExecutePreprocessor.interrupt_on_timeout = True
c.ExecutePreprocessor.startup_timeout = 120
# nbgrader fails a cell whose last outputs arrive more than iopub_timeout (default 4 s) after its reply: on a
# busy machine (a class grading, CI) that is not the submission's fault
c.ExecutePreprocessor.iopub_timeout = 30
c.Execute.kernel_name = GRADER_KERNEL
c.LimitOutput.max_lines = 1000
c.LimitOutput.max_traceback = 100

# Hidden tests are judged in this process, not in the submission's kernel: their inputs are prepared
# before execution and what the kernel reports is checked right after it, before output is cut
# (graders/<lab>.py, coursekit.hidden; coursekit.grading.ExecuteHiddenTests replaces nbgrader's Execute).
# A test cell fails when it raises, not when a library prints
# a warning (coursekit.grading).
c.Autograde.autograde_preprocessors = [
    "coursekit.grading.ExecuteHiddenTests",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "coursekit.grading.StderrIsNotFailure",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# Students' feedback never shows the hidden tests (nbgrader's default does).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "coursekit.grading.HideHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
