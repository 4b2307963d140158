"""The instructor's workflow with the real nbgrader commands, end to end, on Lab 2:

generate -> release to an exchange -> three students fetch and submit -> collect -> autograde ->
manual grading of the written answer -> generate and release feedback -> students fetch it ->
export grades to CSV. Students are simulated as separate home directories and user names (on
JupyterHub each is a real account; see docs/instructor_guide.md).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT
from coursekit import labs

LAB = "lab2_realtime_orders"
COURSE_ID = "m20-emerging"
# nbgrader takes the student's name from the OS account; this runs it as if logged in as argv[1]
AS_STUDENT = ("import sys, nbgrader.utils as u; name = sys.argv.pop(1); u.get_osusername = lambda: name; "
              "from nbgrader.apps.nbgraderapp import main; sys.exit(main())")

pytestmark = pytest.mark.skipif(not (ROOT / "source" / LAB).is_dir(), reason="lab 2 not written yet")


def student(home: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**labs.venv_env(), "HOME": str(home)}
    return subprocess.run([sys.executable, "-c", AS_STUDENT, name, *args], cwd=home, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_release_collect_grade_feedback_export(tmp_path: Path) -> None:
    from nbgrader.api import Gradebook

    course = labs.scratch_course(ROOT, ROOT / labs.CONFIG, [LAB], tmp_path / "course")
    exchange = tmp_path / "exchange"
    ex = f"--Exchange.root={exchange}"
    ok(labs.nbgrader(course, "generate_assignment", LAB, "--force"))
    ok(labs.nbgrader(course, "release_assignment", LAB, ex, "--force"))
    assert (exchange / COURSE_ID / "outbound" / LAB / f"{LAB}.ipynb").is_file()

    source = nbformat.read(course / "source" / LAB / f"{LAB}.ipynb", as_version=4)
    homes = {}
    for name in ("alice", "bob", "carol"):
        home = homes[name] = tmp_path / "home" / name
        home.mkdir(parents=True)
        ok(student(home, name, "fetch_assignment", LAB, f"--course={COURSE_ID}", ex))
        mine = home / LAB / f"{LAB}.ipynb"
        assert mine.is_file()
        work = nbformat.read(mine, as_version=4)
        if name == "alice":        # the reference solution, and the written answer
            by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in source.cells}
            for cell in work.cells:
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                if cell.metadata.get("nbgrader", {}).get("solution"):
                    cell.source = by_id[grade_id].source
        if name == "carol":        # only Part A
            for cell in work.cells:
                if cell.metadata.get("nbgrader", {}).get("grade_id") == "part-a-solution":
                    cell.source = next(c.source for c in source.cells
                                       if c.metadata.get("nbgrader", {}).get("grade_id") == "part-a-solution")
        nbformat.write(work, mine)
        ok(student(home, name, "submit", LAB, f"--course={COURSE_ID}", ex))

    ok(labs.nbgrader(course, "collect", LAB, ex))
    assert sorted(p.name for p in (course / "submitted").iterdir()) == ["alice", "bob", "carol"]
    ok(labs.nbgrader(course, "autograde", LAB, timeout=900))

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        # what the formgrader does when the instructor scores the written answer
        for name, points in (("alice", 2.0), ("bob", 0.0), ("carol", 1.0)):
            grade = gb.find_grade("part-e-answer", LAB, LAB, name)
            grade.manual_score = points
        gb.db.commit()
        scores = {name: gb.find_submission(LAB, name).score for name in homes}
    assert scores == {"alice": 15.0, "bob": 0.0, "carol": 4.0}, scores

    ok(labs.nbgrader(course, "generate_feedback", LAB))
    ok(labs.nbgrader(course, "release_feedback", LAB, ex))
    for name, home in homes.items():
        ok(student(home, name, "fetch_feedback", LAB, f"--course={COURSE_ID}", ex))
        pages = list((home / LAB / "feedback").rglob(f"{LAB}.html"))
        assert len(pages) == 1, f"{name} got no feedback"
        html = pages[0].read_text()
        assert "BEGIN HIDDEN TESTS" not in html and "seed=9091" not in html and "_truth(" not in html, (
            f"hidden tests are visible in {name}'s feedback")
        assert "hidden tests" in html
    shutil.rmtree(course / "feedback")

    ok(labs.nbgrader(course, "export", "--to", str(tmp_path / "grades.csv")))
    with open(tmp_path / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: float(row["score"]) for row in csv.DictReader(handle)}
    assert rows == scores
