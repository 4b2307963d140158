"""Every lab through the instructor's whole cycle, with the real nbgrader commands, in one autograde run.

generate -> release to an exchange -> three students fetch and submit (alice: the reference solution,
bob: the untouched release, carol: only the first part) -> collect -> next to them, the lab's grading
cases from ``tests/lab_cases/<lab>.py`` (a correct solution in another style, a wrong one, one that
tampers inside the kernel) -> **one** ``nbgrader autograde`` for all -> manual grading of the written
answers -> feedback released and fetched -> grades exported. Each test below asserts one property of
that batch. Students are simulated as separate home directories and user names (on JupyterHub each
is a real account; see docs/instructor_guide.md).
"""

from __future__ import annotations

import ast
import csv
import html
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

from conftest import ROOT
from coursekit import labs

LABS = labs.lab_names(ROOT)
COURSE_ID = "m20-emerging"
CASES = ("alternative", "wrong", "tampering")
# nbgrader takes the student's name from the OS account; this runs it as if logged in as argv[1]
AS_STUDENT = ("import sys, nbgrader.utils as u; name = sys.argv.pop(1); u.get_osusername = lambda: name; "
              "from nbgrader.apps.nbgraderapp import main; sys.exit(main())")

pytestmark = [pytest.mark.notebooks, pytest.mark.engines, pytest.mark.parametrize(
    "lab", [pytest.param(lab, marks=[pytest.mark.xdist_group(lab), pytest.mark.cost(f"lab {lab}")]) for lab in LABS],
    scope="module")]


def cases(lab: str) -> ModuleType:
    path = ROOT / "tests" / "lab_cases" / f"{lab}.py"
    assert path.is_file(), f"{lab} has no grading cases: write tests/lab_cases/{lab}.py (see lab2_realtime_orders.py)"
    spec = importlib.util.spec_from_file_location(f"lab_cases_{lab}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def student(home: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """nbgrader run as student ``name``: their own home, and so their own Jupyter directories (the submission
    cache that fetch_feedback reads is in the Jupyter data directory), as each account on a hub has."""
    private = ("JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR")
    env = {**{k: v for k, v in labs.venv_env().items() if k not in private}, "HOME": str(home)}
    return subprocess.run([sys.executable, "-c", AS_STUDENT, name, *args], cwd=home, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def _grade_id(cell: nbformat.NotebookNode) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _fill(nb: nbformat.NotebookNode, replacements: dict[str, str]) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if _grade_id(cell) in replacements:
            cell.source = replacements[_grade_id(cell)].strip() + "\n"
    return nb


class Batch:
    """A scratch course after the whole cycle, with what each step left behind."""

    def __init__(self, lab: str, root: Path) -> None:
        self.lab, self.root = lab, root
        self.course = labs.scratch_course(ROOT, ROOT / labs.CONFIG, [lab], root / "course")
        self.exchange = root / "exchange"
        self.homes: dict[str, Path] = {}
        self.cases = cases(lab)
        self.source = nbformat.read(self.course / "source" / lab / f"{lab}.ipynb", as_version=4)
        self.solutions = {_grade_id(c): c.source for c in self.source.cells
                          if c.metadata.get("nbgrader", {}).get("solution")}

    def run(self) -> None:
        lab, ex = self.lab, f"--Exchange.root={self.exchange}"
        ok(labs.nbgrader(self.course, "generate_assignment", lab, "--force"))
        ok(labs.nbgrader(self.course, "release_assignment", lab, ex, "--force"))
        first_part = {k: v for k, v in self.solutions.items() if k in self.cases.PARTIAL}
        for name, answers in (("alice", self.solutions), ("bob", {}), ("carol", first_part)):
            home = self.homes[name] = self.root / "home" / name
            home.mkdir(parents=True)
            ok(student(home, name, "fetch_assignment", lab, f"--course={COURSE_ID}", ex))
            mine = home / lab / f"{lab}.ipynb"
            nbformat.write(_fill(nbformat.read(mine, as_version=4), answers), mine)
            ok(student(home, name, "submit", lab, f"--course={COURSE_ID}", ex))
        ok(labs.nbgrader(self.course, "collect", lab, ex))
        self.collected = sorted(p.name for p in (self.course / "submitted").iterdir())
        for case in CASES:
            folder = self.course / "submitted" / case / lab
            folder.mkdir(parents=True)
            nbformat.write(_fill(nbformat.read(self.course / "source" / lab / f"{lab}.ipynb", as_version=4),
                                 getattr(self.cases, case.upper())), folder / f"{lab}.ipynb")
            # as `collect` writes it; release_feedback needs it for every submission
            (folder / "timestamp.txt").write_text("2026-12-01 09:00:00.000000 UTC")
        self.log = ok(labs.nbgrader(self.course, "autograde", lab, "--create", timeout=900))
        self.manual()
        ok(labs.nbgrader(self.course, "generate_feedback", lab))
        self.feedback = {name: _page_text(page) for name in (*self.homes, *CASES)
                         for page in (self.course / "feedback" / name / lab).glob("*.html")}
        for case in CASES:  # they did not come through the exchange, so there is nowhere to release theirs
            shutil.rmtree(self.course / "feedback" / case)
        ok(labs.nbgrader(self.course, "release_feedback", lab, ex))
        for name, home in self.homes.items():
            ok(student(home, name, "fetch_feedback", lab, f"--course={COURSE_ID}", ex))
        shutil.rmtree(self.course / "feedback")
        ok(labs.nbgrader(self.course, "export", "--to", str(self.root / "grades.csv")))

    def manual(self) -> None:
        """What the Formgrader does when the instructor scores the written answers."""
        from nbgrader.api import Gradebook

        with Gradebook(self.gradebook, COURSE_ID) as gb:
            self.needed_manual_grading = gb.find_submission(self.lab, "alice").needs_manual_grade
            for grade_id, points in self.cases.MANUAL.items():
                for name in (*self.homes, *CASES):
                    grade = gb.find_grade(grade_id, self.lab, self.lab, name)
                    grade.manual_score, grade.needs_manual_grade = points.get(name, 0.0), False
            gb.db.commit()

    @property
    def gradebook(self) -> str:
        return f"sqlite:///{self.course / 'gradebook.db'}"

    def autograded(self, name: str) -> nbformat.NotebookNode:
        return nbformat.read(self.course / "autograded" / name / self.lab / f"{self.lab}.ipynb", as_version=4)


@pytest.fixture(scope="module")
def batch(lab: str, tmp_path_factory: pytest.TempPathFactory) -> Batch:
    done = Batch(lab, tmp_path_factory.mktemp(lab))
    done.run()
    return done


def test_every_lab_has_grading_cases(lab: str) -> None:
    module = cases(lab)
    parts = {grade_id for grade_id in cases(lab).ALTERNATIVE}
    for case in CASES:
        assert set(getattr(module, case.upper())) == parts, f"{case} covers every autograded part"


def test_collect_gets_every_submission(batch: Batch) -> None:
    assert batch.collected == ["alice", "bob", "carol"]


def test_reference_gets_every_point_and_blank_none(batch: Batch) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(batch.gradebook, COURSE_ID) as gb:
        reference, blank = gb.find_submission(batch.lab, "alice"), gb.find_submission(batch.lab, "bob")
        assert reference.max_code_score > 0
        assert reference.code_score == reference.max_code_score, "the reference must get every autograded point"
        assert blank.code_score == 0, "an untouched release must get zero"


def test_a_correct_solution_in_another_style_gets_full_marks(batch: Batch) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(batch.gradebook, COURSE_ID) as gb:
        alternative = gb.find_submission(batch.lab, "alternative")
        assert alternative.code_score == alternative.max_code_score


def _test_cells(batch: Batch) -> list[str]:
    return [_grade_id(c) for c in batch.source.cells
            if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")]


@pytest.mark.parametrize("case", ["wrong", "tampering"])
def test_wrong_and_tampering_solutions_score_nothing_on_any_part(batch: Batch, case: str) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(batch.gradebook, COURSE_ID) as gb:
        for test_cell in _test_cells(batch):
            grade = gb.find_grade(test_cell, batch.lab, batch.lab, case)
            assert grade.auto_score == 0, f"the {case} solution still scores on {test_cell}"


def test_tampering_fools_the_kernel_but_not_the_grader(batch: Batch) -> None:
    for cell in batch.autograded("tampering").cells:
        if _grade_id(cell) in _test_cells(batch):
            errors = [o["ename"] for o in cell.outputs if o["output_type"] == "error"]
            assert errors == ["HiddenTestFailed"], f"only the grader should fail {_grade_id(cell)}: {errors}"


def test_manual_grades_add_up_and_are_exported(batch: Batch) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(batch.gradebook, COURSE_ID) as gb:
        assert batch.needed_manual_grading, "written answers are left for the instructor"
        assert not gb.find_submission(batch.lab, "alice").needs_manual_grade, "and graded by them"
        scores = {name: gb.find_submission(batch.lab, name).score for name in batch.homes}
        full = gb.find_assignment(batch.lab).max_score
        partial = sum(gb.find_grade(c, batch.lab, batch.lab, "carol").auto_score or 0 for c in _test_cells(batch))
    manual = {name: sum(points.get(name, 0.0) for points in batch.cases.MANUAL.values()) for name in batch.homes}
    assert scores["alice"] == full, "the reference and full written marks make the lab's total"
    assert scores["bob"] == manual["bob"]
    assert 0 < partial < full and scores["carol"] == partial + manual["carol"]
    with open(batch.root / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: float(row["score"]) for row in csv.DictReader(handle)}
    assert {name: rows[name] for name in batch.homes} == scores


def _page_text(page: Path) -> str:
    """What a reader of an HTML page sees: its text without tags (syntax highlighting splits code into spans)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def _hidden_texts(batch: Batch) -> set[str]:
    """Text that really is in the lab's hidden tests and nowhere in the released lab: the hidden blocks of
    the source, and the constant parts (three words or more) of the grader's failure messages."""
    texts = {line.strip() for cell in batch.source.cells
             for block in re.findall(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", cell.source, re.DOTALL)
             for line in block.splitlines() if len(line.strip()) > 10}
    tree = ast.parse((batch.course / "graders" / f"{batch.lab}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and node.msg is not None:
            parts = node.msg.values if isinstance(node.msg, ast.JoinedStr) else [node.msg]
            texts |= {p.value.strip(" :") for p in parts if isinstance(p, ast.Constant) and isinstance(p.value, str)
                      and len(p.value.split()) >= 3}
    released = json.dumps(nbformat.read(batch.course / "release" / batch.lab / f"{batch.lab}.ipynb", as_version=4))
    return {text for text in texts if json.dumps(text)[1:-1] not in released}  # the visible tests say some too


def test_feedback_reaches_each_student_without_hidden_tests(batch: Batch) -> None:
    for name, home in batch.homes.items():
        pages = list((home / batch.lab / "feedback").rglob(f"{batch.lab}.html"))
        assert len(pages) == 1, f"{name} got no feedback"
        assert "hidden tests" in _page_text(pages[0])
    hidden = _hidden_texts(batch)
    instructor_sees = json.dumps([c.get("outputs", []) for case in CASES for c in nbformat.read(
        batch.course / "autograded" / case / batch.lab / f"{batch.lab}.ipynb", as_version=4).cells])
    assert any(json.dumps(text)[1:-1] in instructor_sees for text in hidden), (
        "the scan looks for text the hidden tests really print (the instructor sees it in the cases' notebooks)")
    assert set(batch.feedback) == {*batch.homes, *CASES}
    for name, text in batch.feedback.items():
        shown = sorted(t for t in hidden if t in text)
        assert not shown, f"{name}'s feedback shows the hidden tests: {shown}"
