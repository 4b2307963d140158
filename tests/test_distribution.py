"""The learners' distribution (``coursekit dist``): no lab solution, hidden test or grading state, and its
lessons run from it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from conftest import ROOT
from coursekit import distribution, notebooks

_REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)(.*?)### END \1", re.DOTALL)
_BORING = ("import ", "from ", "#", '"""', "def ", "return", "assert isinstance")


def _lines(text: str, shortest: int) -> set[str]:
    return {s for s in (line.strip() for line in text.splitlines()) if len(s) >= shortest and not s.startswith(_BORING)}


def secret_lines(course: Path) -> set[str]:
    """Lines of the labs' solutions, written answers and hidden tests that are not in what learners get anyway
    (the released labs and the lessons). The course package is not counted as public for solutions: a
    solution copied into it must be found. Hidden-test code is grading machinery: a line of it that the
    package also has word for word (``os.kill(pid, signal.SIGKILL)``) is an idiom, and reveals nothing."""
    public = "\n".join(p.read_text(errors="replace") for folder in ("notebooks", "release")
                       for p in (course / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    package = "\n".join(p.read_text(errors="replace") for p in (course / "src").rglob("*.py"))
    solutions: set[str] = set()
    machinery: set[str] = set()
    for path in (course / "source").rglob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "markdown" and meta.get("solution"):
                solutions |= _lines(cell.source, 25)
            for kind, region in _REGION.findall(cell.source):
                (solutions if kind == "SOLUTION" else machinery).update(_lines(region, 25))
    for path in (course / "graders").glob("*.py"):
        machinery |= _lines(path.read_text(), 25)
    secret = solutions | {line for line in machinery if line not in package}
    return {line for line in secret if line not in public}


def leaks(folder: Path, secret: set[str]) -> dict[str, list[str]]:
    """The files of ``folder`` that contain a secret line, with the lines."""
    found = {}
    for path in folder.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            hits = sorted(line for line in secret if line in text)
            if hits:
                found[str(path.relative_to(folder))] = hits
    return found


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    into = tmp_path_factory.mktemp("learner") / "m20-learner"
    distribution.build(ROOT, into)
    return into


def test_the_learner_distribution_holds_no_solution_hidden_test_or_grading_state(dist: Path) -> None:
    secret = secret_lines(ROOT)
    assert len(secret) >= 30, f"too few secret lines to prove anything ({len(secret)}): is the scan broken?"
    assert not leaks(dist, secret), "solution or hidden-test text in the learners' copy"
    for absent in ("source", "graders", "tests", "authoring", "docs", "nbgrader_config.py", "gradebook.db",
                   ".grading-secret", "autograded", "submitted", "feedback", ".ci"):
        assert not (dist / absent).exists(), f"{absent} is in the learners' copy"
    assert sorted(p.name for p in (dist / "notebooks").glob("*.ipynb")) == [
        p.name for p in notebooks.lesson_paths(ROOT)], "every lesson"
    assert (dist / "release" / "lab2_realtime_orders" / "lab2_realtime_orders.ipynb").is_file(), "the released labs"
    readme = (dist / "README.md").read_text()
    assert "learners' copy" in readme and "For instructors" not in readme and "graders/" not in readme


def test_the_leak_scan_finds_a_planted_line(dist: Path, tmp_path: Path) -> None:
    secret = secret_lines(ROOT)
    planted = tmp_path / "copy"
    shutil.copytree(dist / "src", planted / "src")
    with (planted / "src" / "coursekit" / "data.py").open("a") as out:
        out.write(f"\n# an answer found online:\n# {sorted(secret)[0]}\n")
    assert list(leaks(planted, secret)) == ["src/coursekit/data.py"]


def test_the_learner_copy_has_no_test_command(dist: Path) -> None:
    done = subprocess.run(["bash", str(dist / "course"), "test"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode != 0 and "instructor repository" in done.stderr


@pytest.mark.notebooks
@pytest.mark.engines
def test_a_lesson_runs_from_the_learner_copy(dist: Path) -> None:
    """The lightest lesson, importing the distribution's own copy of the course package."""
    lesson = dist / "notebooks" / "13_event_driven_patterns.ipynb"
    nb = nbformat.read(lesson, as_version=4)
    nb.cells.insert(0, new_code_cell(f"import coursekit\nassert coursekit.__file__.startswith({str(dist)!r})"))
    done = notebooks.execute(nb, lesson.parent, env={"PYTHONPATH": str(dist / "src")})
    errors = [o for c in done.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
