"""The nbgrader pipeline, for every lab in source/ and for the lab-shaped fixture in tests/fixtures.

(a) release/ equals a fresh `nbgrader generate_assignment`; (b) `nbgrader validate` passes the
source (running its hidden tests in the kernel, as an author does) and fails the release, as a student
sees with the Validate button: on the fixture lab, which proves the command and the course's config; for
the real labs the same two facts are proven by test_labs.py's cycle (the source's solutions get full
marks, the untouched release none), so validating each again here (100-170 s of the suite's budget) would
prove nothing new; (c) no solution or hidden test reaches release/. Autograding is tested in test_labs.py
(each lab's whole cycle) and test_hostile_submissions.py (the fixture lab).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURE_COURSE, ROOT
from coursekit import labs

CONFIG = ROOT / labs.CONFIG
CASES = [(course, lab) for course in (ROOT, FIXTURE_COURSE) for lab in labs.lab_names(course)]
IDS = [lab for _, lab in CASES]
pytestmark = pytest.mark.parametrize(("course", "lab"), CASES, ids=IDS)

_REGIONS = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.DOTALL)


@pytest.mark.notebooks
def test_release_is_generated_from_source(course: Path, lab: str, tmp_path: Path) -> None:
    fresh = labs.generate(course, lab, CONFIG, tmp_path)
    changed = labs.diff(fresh, course / "release" / lab)
    assert not changed, f"release/{lab} is out of date ({changed}): run `coursekit release`"


def _validate(notebook: Path) -> str:
    """``nbgrader validate`` from the course directory, as an instructor runs it: its nbgrader_config.py
    (120 s a cell, as in autograding) applies."""
    course = notebook.parents[2]
    done = labs.nbgrader(course, "validate", str(notebook.relative_to(course)), timeout=600)
    return done.stdout + done.stderr


@pytest.mark.notebooks
@pytest.mark.engines
def test_validate_passes_source_and_fails_release(course: Path, lab: str, tmp_path: Path) -> None:
    if course != FIXTURE_COURSE:
        pytest.skip("a real lab's source and release are judged by its whole cycle in test_labs.py")
    name = f"{lab}.ipynb"
    scratch = labs.scratch_course(course, CONFIG, [lab], tmp_path / "course")  # nothing runs in the repo's folders
    shutil.copytree(course / "release" / lab, scratch / "release" / lab)
    validated = _validate(scratch / "source" / lab / name)
    assert "Success! Your notebook passes all the tests." in validated, validated[-4000:]
    assert "VALIDATION FAILED" in _validate(scratch / "release" / lab / name)


def test_nothing_secret_reaches_release(course: Path, lab: str) -> None:
    released = "\n".join(p.read_bytes().decode(errors="replace") for p in (course / "release" / lab).rglob("*")
                         if p.is_file())   # data files (Parquet) too: text in them would show
    secrets: list[str] = []
    public: list[str] = []  # what the student is meant to see: the source minus its secret regions
    for path in (course / "source" / lab).rglob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            text = "".join(cell["source"])
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("solution") and cell["cell_type"] == "markdown":
                secrets.append(text)
                continue
            secrets += [body for _, body in _REGIONS.findall(text)]
            public.append(_REGIONS.sub("", text))
    assert secrets, "a lab has at least one solution region"
    assert "BEGIN SOLUTION" not in released and "HIDDEN TESTS" not in released
    assert not list((course / "release" / lab).rglob("graders")), "graders/ (hidden tests) is never released"
    visible = "\n".join(public)
    for secret in secrets:
        for line in (s.strip() for s in secret.splitlines()):
            if len(line) >= 12 and line not in visible:
                assert json_escape(line) not in released, f"release/{lab} leaks: {line!r}"


def json_escape(line: str) -> str:
    return json.dumps(line)[1:-1]
