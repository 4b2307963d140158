"""nbgrader configuration for this course directory (Module 20 labs).

Run nbgrader commands from this directory: ``nbgrader generate_assignment lab2_realtime_orders``.
JupyterHub deployments override ``Exchange.root`` and ``CourseDirectory.course_id`` in the
system-wide config; see the instructor guide in README.md.
"""

from pathlib import Path

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.root = str(Path(__file__).resolve().parent)
c.CourseDirectory.course_id = "m20-emerging"
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# a lab's data files beside its notebook are released with it; never caches or checkpoints
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*"]

# Spark and Kafka start-up takes tens of seconds; a single cell may wait on a stream.
c.ExecutePreprocessor.timeout = 240
c.ExecutePreprocessor.interrupt_on_timeout = True
c.ExecutePreprocessor.startup_timeout = 120

# generate_assignment: execute nothing while generating; the tests prove the sources run.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
