"""Broken and hostile submissions: the batch goes on, the others are graded right, the bad one gets
zero or its honest score with a reason in the log, and tampering never raises a score.

Built from the release notebook of the lab-shaped fixture (2 autograded points), so the batch is quick.
The same batch proves the fixture's reference solution gets every point and its untouched release none.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import nbformat
import pytest

from conftest import FIXTURE_COURSE, ROOT
from coursekit import labs

LAB = "lab0_fixture"
pytestmark = pytest.mark.notebooks
BATCH = pytest.mark.xdist_group("hostile")  # the tests that share the module's one autograde run
GOOD = '''
def tumbling_counts(events, width_s):
    counts = Counter()
    for event in events:
        t = datetime.fromisoformat(event["event_time"].replace("Z", "+00:00")).timestamp()
        counts[datetime.fromtimestamp(t - t % width_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")] += 1
    return dict(counts)
'''
WRONG = '''
def tumbling_counts(events, width_s):
    return {"2026-11-02T09:00:00Z": 2, "2026-11-02T09:01:00Z": 1}   # hard-coded for the sample
'''
# In-process tampering, each 0 when the grader judges the hidden tests. Swallowing errors (and forging the
# report on top of it) scores 2 when they are judged inside the kernel (test_in_kernel_hidden_tests_would_be_fooled);
# the always-equal object is stopped by the JSON round trip of the returned value, in either place.
SWALLOWS_ERRORS = WRONG + '''
import ast

class _Swallow(ast.NodeTransformer):   # wrap every later cell in try/except: no test can fail
    def visit_Module(self, node):
        handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()), name=None, body=[ast.Pass()])
        node.body = [ast.Try(body=node.body or [ast.Pass()], handlers=[handler], orelse=[], finalbody=[])]
        return ast.fix_missing_locations(node)

get_ipython().ast_transformers.append(_Swallow())
'''
ALWAYS_EQUAL = '''
class _Yes(dict):   # a dict that equals everything
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __getitem__(self, key):
        return 2
    def values(self):
        return [len(EVENTS)]

def tumbling_counts(events, width_s):
    return _Yes()
'''
FORGES_THE_REPORT = SWALLOWS_ERRORS + '''
import re
from IPython.display import display
import coursekit.hidden

coursekit.hidden.report = lambda token, value: None
def _forge(info):
    for token in re.findall(r"_coursekit_report\\(\'([0-9a-f]+)\'", info.raw_cell or ""):
        display({coursekit.hidden.MIME: {"token": token, "value": {"__pairs__": [["2026-11-02T09:00:00Z", 3]]}}},
                raw=True)
get_ipython().events.register("pre_run_cell", _forge)
'''
DAEMON = '''
import subprocess, sys
subprocess.Popen([sys.executable, "-c", "import pathlib, time\\n"
                  "while True:\\n    pathlib.Path(HEARTBEAT).write_text(str(time.time()))\\n    time.sleep(0.2)"],
                 start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
'''
TAMPERING = ["swallows_errors", "always_equal", "forges_the_report"]
SUBMISSIONS = {
    "good": {"solution": GOOD},
    "endless_loop": {"solution": "while True:\n    pass\n" + GOOD},
    "loop_after_a_correct_answer": {"solution": GOOD + "\nwhile True:\n    pass\n"},
    "kills_kernel": {"solution": "import os\nos._exit(3)\n" + GOOD},
    "memory_bomb": {"solution": "hog = []\nwhile True:\n    hog.append(bytearray(64 * 2**20))\n" + GOOD},
    "huge_output": {"solution": GOOD + "\nfor i in range(200_000):\n    print('spam', i)\n"},
    "warns_but_correct": {"solution": GOOD.replace(
        "    return dict(counts)",
        "    import warnings\n    warnings.warn('a library deprecation', FutureWarning)\n    return dict(counts)")},
    "edited_tests": {"solution": WRONG, "tests": "print('all tests passed')\n"},
    "deleted_tests": {"solution": WRONG, "delete_tests": True},
    "edited_metadata": {"solution": WRONG, "metadata": True},
    "reads_the_source": {"solution": (
        "import json, pathlib\n"
        "root = pathlib.Path.cwd().parents[2]   # autograded/<student>/<lab> -> the course directory\n"
        "cells = json.loads((root / 'source' / 'lab0_fixture' / 'lab0_fixture.ipynb').read_text())['cells']\n"
        "exec(''.join(next(c['source'] for c in cells\n"
        "                  if c['metadata'].get('nbgrader', {}).get('grade_id') == 'part-a-solution')))\n")},
    # answers right only if it can read graders/ (where the hidden tests are judged from)
    "reads_the_graders": {"solution": (
        "import pathlib\n"
        "if (pathlib.Path.cwd().parents[2] / 'graders' / 'lab0_fixture.py').is_file():\n"
        + "".join("    " + line + "\n" for line in GOOD.strip().splitlines()) + "else:\n"
        + "".join("    " + line + "\n" for line in WRONG.strip().splitlines()))},
    # scores only if it can read the gradebook (where the hidden tests are stored)
    "reads_the_gradebook": {"solution": (
        "import pathlib\n"
        "header = (pathlib.Path.cwd().parents[2] / 'gradebook.db').read_bytes()[:15]\n"
        "if header == b'SQLite format 3':\n" + "".join("    " + line + "\n" for line in GOOD.strip().splitlines()))},
    "swallows_errors": {"solution": SWALLOWS_ERRORS},
    "always_equal": {"solution": ALWAYS_EQUAL},
    "forges_the_report": {"solution": FORGES_THE_REPORT},
    # honest 2, and the process it leaves behind must not outlive its kernel
    "leaves_a_daemon": {"solution": GOOD + DAEMON},
    "patched_helpers": {"solution": WRONG + (
        "\nimport coursekit.data as _d\n_d.order_events = lambda *a, **k: EVENTS\n"
        "import pandas as _pd\n_real = _pd.DataFrame.groupby\n")},
}


def _build(release: Path, spec: dict[str, object]) -> nbformat.NotebookNode:
    nb = nbformat.read(release, as_version=4)
    cells = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") == "part-a-solution":
            cell.source = str(spec["solution"]).strip() + "\n"
        if meta.get("grade_id") == "part-a-tests":
            if spec.get("delete_tests"):
                continue
            if "tests" in spec:
                cell.source = str(spec["tests"])
            if spec.get("metadata"):
                meta.update(points=100, grade_id="part-a-tests")
        if meta.get("grade_id") == "part-a-solution" and spec.get("metadata"):
            meta.update(grade=True, points=50)
        cells.append(cell)
    nb.cells = cells
    return nb


@pytest.fixture(scope="module")
def heartbeat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file outside the course directory that the daemon of ``leaves_a_daemon`` keeps touching."""
    return tmp_path_factory.mktemp("outside") / "heartbeat"


def _submit(course: Path, submissions: dict[str, dict[str, object]], heartbeat: Path) -> None:
    assert labs.nbgrader(course, "generate_assignment", LAB, "--force").returncode == 0
    release = course / "release" / LAB
    for name, spec in submissions.items():
        folder = course / "submitted" / name / LAB
        shutil.copytree(release, folder)
        spec = {**spec, "solution": str(spec["solution"]).replace("HEARTBEAT", repr(str(heartbeat)))}
        nbformat.write(_build(release / f"{LAB}.ipynb", spec), folder / f"{LAB}.ipynb")


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory, heartbeat: Path) -> tuple[Path, str]:
    course = labs.scratch_course(FIXTURE_COURSE, ROOT / labs.CONFIG, [LAB], tmp_path_factory.mktemp("hostile"))
    _submit(course, SUBMISSIONS, heartbeat)
    release = course / "release" / LAB
    broken = course / "submitted" / "not_json" / LAB
    shutil.copytree(release, broken)
    (broken / f"{LAB}.ipynb").write_text('{"cells": [ this is not JSON')
    renamed = course / "submitted" / "renamed" / LAB
    shutil.copytree(release, renamed)
    (renamed / f"{LAB}.ipynb").rename(renamed / f"{LAB} (1).ipynb")
    shutil.copytree(release, course / "submitted" / "blank" / LAB)
    shutil.copytree(course / "source" / LAB, course / "submitted" / "reference" / LAB)
    done = labs.nbgrader(course, "autograde", LAB, "--create", "--ExecutePreprocessor.timeout=15",
                         "--Execute.timeout=15", timeout=900)
    return course, done.stdout + done.stderr


def _scores(course: Path) -> dict[str, float | None]:
    from nbgrader.api import Gradebook, MissingEntry

    result: dict[str, float | None] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in gb.students:
            try:
                result[student.id] = gb.find_submission(LAB, student.id).code_score
            except MissingEntry:
                result[student.id] = None
    return result


@BATCH
def test_the_good_submission_is_graded_right(graded: tuple[Path, str]) -> None:
    course, _ = graded
    assert _scores(course)["good"] == 2


@BATCH
def test_reference_gets_every_point_and_blank_none(graded: tuple[Path, str]) -> None:
    from nbgrader.api import Gradebook

    course, _ = graded
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        reference = gb.find_submission(LAB, "reference")
        assert reference.max_code_score > 0
        assert reference.code_score == reference.max_code_score, "the reference must get every autograded point"
        assert gb.find_submission(LAB, "blank").code_score == 0, "an untouched release must get zero"
        assert reference.needs_manual_grade, "written answers are left for the instructor"


@BATCH
@pytest.mark.parametrize("name", ["endless_loop", "kills_kernel", "memory_bomb", "edited_tests", "deleted_tests",
                                  "edited_metadata", "patched_helpers", "reads_the_source", "reads_the_gradebook",
                                  "reads_the_graders", "not_json", "renamed", *TAMPERING])
def test_bad_submissions_get_no_points(graded: tuple[Path, str], name: str) -> None:
    course, _ = graded
    assert _scores(course).get(name) in (0, None), f"{name} scored"


@BATCH
def test_huge_output_and_late_loops_keep_their_honest_score(graded: tuple[Path, str]) -> None:
    course, _ = graded
    assert _scores(course)["loop_after_a_correct_answer"] == 2, "the function was defined before the loop"
    assert _scores(course)["huge_output"] == 2
    assert _scores(course)["warns_but_correct"] == 2, "a warning on stderr is not a failed test"
    warned = nbformat.read(course / "autograded" / "warns_but_correct" / LAB / f"{LAB}.ipynb", as_version=4)
    texts = [o.get("text", "") for c in warned.cells for o in c.get("outputs", [])]
    assert any("[stderr]" in t and "FutureWarning" in t for t in texts), "the warning is kept, marked, as output"
    nb = nbformat.read(course / "autograded" / "huge_output" / LAB / f"{LAB}.ipynb", as_version=4)
    printed = sum(len(o.get("text", "").splitlines()) for c in nb.cells for o in c.get("outputs", []))
    assert printed <= 1100, "output is cut to LimitOutput.max_lines"


@BATCH
def test_the_log_names_each_failure(graded: tuple[Path, str]) -> None:
    _, log = graded
    for name in ("not_json", "kills_kernel", "renamed"):
        assert name in log, f"the log does not mention {name}"
    assert "was stopped" in log and "MB" in log, "the memory cap says why it stopped a kernel"


@BATCH
def test_a_lab_that_does_not_exist(graded: tuple[Path, str]) -> None:
    course, _ = graded
    done = labs.nbgrader(course, "autograde", "lab9_nope", timeout=120)
    assert done.returncode != 0
    assert "lab9_nope" in done.stdout + done.stderr


@BATCH
def test_nothing_a_submission_starts_outlives_its_kernel(graded: tuple[Path, str], heartbeat: Path) -> None:
    course, _ = graded
    assert _scores(course)["leaves_a_daemon"] == 2, "starting a process is allowed; the answer is right"
    assert heartbeat.is_file(), "the daemon ran while the kernel was alive"
    before = heartbeat.read_text()
    time.sleep(1.0)
    assert heartbeat.read_text() == before, "the daemon is still running after its kernel ended"


@BATCH
def test_the_log_gives_the_grader_s_reason(graded: tuple[Path, str]) -> None:
    course, log = graded
    for name in TAMPERING:
        assert f"{name}, part-a-tests: hidden tests failed" in log
    nb = nbformat.read(course / "autograded" / "always_equal" / LAB / f"{LAB}.ipynb", as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "HiddenTestFailed", "the instructor sees why in the autograded notebook"


def test_in_kernel_hidden_tests_would_be_fooled(tmp_path: Path, heartbeat: Path) -> None:
    """Without the grader-side judging and the isolation, the same tampering scores: the tests above are not vacuous."""
    course = labs.scratch_course(FIXTURE_COURSE, ROOT / labs.CONFIG, [LAB], tmp_path / "course")
    with (course / labs.CONFIG).open("a") as config:
        config.write("\n# defences off, for this test only\nos.environ.pop(COURSE_ENV)\n"
                     "c.Autograde.autograde_preprocessors = [p for p in c.Autograde.autograde_preprocessors\n"
                     "                                      if 'HiddenTests' not in p]\n")
    _submit(course, {name: SUBMISSIONS[name] for name in ["good", "reads_the_graders", *TAMPERING]}, heartbeat)
    labs.nbgrader(course, "autograde", LAB, "--create", timeout=600)
    scores = _scores(course)
    assert scores["good"] == 2, "the hidden tests run in the kernel when the grader does not judge them"
    assert scores["swallows_errors"] == 2 and scores["forges_the_report"] == 2
    assert scores["reads_the_graders"] == 2, "without isolation graders/ is readable"
    assert scores["always_equal"] == 0, "the returned value is compared as JSON data, not as the kernel's object"
