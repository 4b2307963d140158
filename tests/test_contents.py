"""The generated contents (CONTENTS.md, the README's table, each lesson's navigation cell) are what
``coursekit contents`` makes now, their links resolve, and every objective is covered, or known to be short."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import ROOT
from coursekit import contents, notebooks

if not (ROOT / contents.SYLLABUS).is_file():
    pytest.skip(f"no syllabus at {contents.SYLLABUS} (a learner's copy of the course)", allow_module_level=True)

REGENERATE = "generated: run `coursekit contents` (never edit it by hand)"
LESSONS = notebooks.lesson_paths(ROOT)
MIN_LESSONS = 3
# Objectives served by fewer than MIN_LESSONS lessons written, and why. Shrinks to empty as lessons are written.
STILL_SHORT: dict[int, str] = {}
# Objectives no lab serves, and why: a question for the syllabus (its labs are on objectives 1-2, 3 and 5).
NO_LAB = {4: "the syllabus has no lab on cloud platforms"}
_LINK = re.compile(r"\]\(([^)#\s]+)")


@pytest.fixture(scope="module")
def course() -> contents.Course:
    return contents.load(ROOT)


def test_contents_page_is_up_to_date(course: contents.Course) -> None:
    assert (ROOT / "CONTENTS.md").read_text() == contents.contents_page(course), f"CONTENTS.md is {REGENERATE}"


def test_readme_table_is_up_to_date(course: contents.Course) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split(contents.README_START, 1)[1].split(contents.README_END, 1)[0]
    assert section == "\n" + contents.readme_section(course) + "\n", f"the README's table of lessons is {REGENERATE}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_lesson_ends_with_its_navigation(course: contents.Course, path: Path) -> None:
    cells = notebooks.read(path).cells
    generated = [i for i, c in enumerate(cells) if contents.NAV_TAG in c.metadata.get("tags", [])]
    assert generated == [len(cells) - 1], f"{path.name}: one navigation cell, the last; it is {REGENERATE}"
    assert cells[-1].source == contents.navigation(course, path.name[:2]), f"{path.name}'s navigation is {REGENERATE}"


def test_links_point_at_files_that_exist(course: contents.Course) -> None:
    pages = [(ROOT, contents.contents_page(course)), (ROOT, contents.readme_section(course))]
    pages += [(path.parent, notebooks.read(path).cells[-1].source) for path in LESSONS]
    broken = [f"{folder.name}: {target}" for folder, text in pages for target in _LINK.findall(text)
              if not target.startswith("http") and not (folder / target).is_file()]
    assert not broken, f"links to files that do not exist: {broken}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_lesson_states_the_objectives_the_syllabus_gives_it(course: contents.Course, path: Path) -> None:
    opening = notebooks.read(path).cells[0].source
    stated = re.search(r"Objectives? ([\d–, and-]+?) of the module", opening)
    assert stated, f"{path.name}'s opening cell names no 'Objective N of the module'"
    assert contents.parse_objectives(stated.group(1)) == course.part(path.name[:2]).objectives, (
        f"{path.name} says it serves objective(s) {stated.group(1)}; the syllabus says "
        f"{course.part(path.name[:2]).objectives}")


def test_every_objective_has_three_lessons_or_is_known_to_be_short(course: contents.Course) -> None:
    table = contents.coverage(course)
    short = {n: written for n, (written, _, _) in table.items() if len(written) < MIN_LESSONS}
    report = {n: f"{[p.key for p in short[n]]} written, {[p.key for p in table[n][1]]} to come" for n in short}
    assert set(short) == set(STILL_SHORT), (
        f"objectives with fewer than {MIN_LESSONS} lessons written: {report}; expected only {STILL_SHORT} "
        "(remove from STILL_SHORT what is served now; an objective newly short lost a lesson)")
    for number in short:
        written, to_come, _ = table[number]
        assert len(written) + len(to_come) >= MIN_LESSONS, f"objective {number} stays short with every lesson written"


def test_every_objective_has_a_lab_or_is_known_not_to(course: contents.Course) -> None:
    without = {n for n, (_, _, labs) in contents.coverage(course).items() if not any(lab.path for lab in labs)}
    assert without == set(NO_LAB), f"objectives no lab serves: {sorted(without)}; expected {NO_LAB}"


def test_time_and_engines_are_read_from_the_code() -> None:
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    prose = " ".join(["word"] * 2000)  # 10 min of reading
    solution = new_markdown_cell("<details>\n\n" + prose + "\n</details>")
    solution.metadata["tags"] = ["solution:1"]
    nb = new_notebook(cells=[new_markdown_cell(prose + "\n```python\n" + prose + "\n```"), solution,
                             new_code_cell("%matplotlib inline\nfrom coursekit import data, kafka"),
                             new_code_cell("import mlflow.pyfunc"), new_code_cell("x = 1")])
    assert contents.minutes(nb) == 15, "10 min of prose (code blocks and solutions left out) + 3 code cells"
    assert contents.engines(nb) == ["Kafka", "MLflow"]
    assert contents.engines(nb, ("import duckdb",)) == ["Kafka", "MLflow", "DuckDB"]


def test_regeneration_replaces_only_the_navigation_cell() -> None:
    from nbformat.v4 import new_markdown_cell, new_notebook

    nb = new_notebook(cells=[new_markdown_cell("# Lesson 99 — x")])
    once = contents.with_navigation(nb, "first")
    twice = contents.with_navigation(once, "second")
    assert [c.source for c in twice.cells] == ["# Lesson 99 — x", "second"]
    assert twice.cells[-1].id == contents.NAV_ID
    assert notebooks.clean(twice).cells[-1].metadata["tags"] == [contents.NAV_TAG], "cleaning keeps the marker"
