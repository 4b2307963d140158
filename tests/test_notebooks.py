"""Lessons: committed clean, shaped like the template, and every exercise proven by its check.

nbval runs every notebook top to bottom (see pyproject.toml); these tests add what nbval cannot:
each reference solution passes its self-check, and each untouched starter does not.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import ROOT
from coursekit import notebooks
from coursekit.exercises import LOG_ENV

LESSONS = notebooks.lesson_paths(ROOT)
TEMPLATE = ROOT / "authoring" / "lesson_template.ipynb"
WITH_EXERCISES = [p for p in [*LESSONS, TEMPLATE] if notebooks.exercises(notebooks.read(p))]


def _id(path: Path) -> str:
    return path.stem


@pytest.mark.parametrize("path", [*notebooks.all_notebooks(ROOT), TEMPLATE], ids=_id)
def test_committed_without_outputs(path: Path) -> None:
    assert notebooks.is_clean(notebooks.read(path)), f"run `coursekit clean {path.relative_to(ROOT)}`"


def test_lessons_exist() -> None:
    assert LESSONS, "no lessons found under notebooks/"


@pytest.mark.parametrize("path", LESSONS, ids=_id)
def test_lesson_follows_the_template(path: Path) -> None:
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name)
    nb = notebooks.read(path)
    text = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert text[0].startswith(f"# Lesson {path.name[:2]} — "), "open with '# Lesson NN — title'"
    assert "Learning goals" in text[0]
    headings = [line for cell in text for line in cell.splitlines() if line.startswith("## ")]
    for needed in ("## Setup", "## Exercises", "## Key takeaways", "## Further reading"):
        assert needed in headings, f"missing section {needed!r}"
    assert headings[0] == "## Setup", "Setup comes first"


@pytest.mark.parametrize("path", [*LESSONS, TEMPLATE], ids=_id)
def test_every_exercise_is_complete(path: Path) -> None:
    nb = notebooks.read(path)
    for ex in notebooks.exercises(nb).values():
        assert None not in (ex.starter, ex.check, ex.solution), f"exercise {ex.id} lacks a starter, check or solution"
        assert ex.starter < ex.check < ex.solution, f"exercise {ex.id}: starter, then check, then solution"
        assert f'check("{ex.id}")' in nb.cells[ex.check].source
        compile(notebooks.solution_code(nb.cells[ex.solution].source), f"solution {ex.id}", "exec")
        assert nb.cells[ex.solution].cell_type == "markdown" and "<details>" in nb.cells[ex.solution].source


def _outcomes(log: Path) -> dict[str, bool]:
    results: dict[str, bool] = {}
    for line in log.read_text().splitlines() if log.is_file() else []:
        entry = json.loads(line)
        results[entry["exercise"]] = entry["passed"]
    return results


@pytest.mark.notebooks
@pytest.mark.parametrize("path", WITH_EXERCISES, ids=_id)
def test_reference_solutions_pass_their_checks(path: Path, tmp_path: Path) -> None:
    nb = notebooks.read(path)
    log = tmp_path / "checks.jsonl"
    notebooks.execute(notebooks.with_solutions(nb), path.parent, env={LOG_ENV: str(log)})
    assert _outcomes(log) == dict.fromkeys(notebooks.exercises(nb), True)


@pytest.mark.notebooks
@pytest.mark.parametrize("path", WITH_EXERCISES, ids=_id)
def test_untouched_starters_do_not_pass(path: Path, tmp_path: Path) -> None:
    nb = notebooks.read(path)
    log = tmp_path / "checks.jsonl"
    notebooks.execute(nb, path.parent, env={LOG_ENV: str(log)})
    assert _outcomes(log) == dict.fromkeys(notebooks.exercises(nb), False)
