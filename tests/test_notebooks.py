"""Lessons: committed clean, shaped like the template, and every exercise proven by its check.

Each lesson (and the template) is executed once, in one kernel (``notebooks.exercise_trials``): first
top to bottom as written, where nothing may raise and every untouched starter must fail its check;
then each exercise is replayed with its wrong answers, which the check must reject saying what their
``# the check says:`` line says, and with its reference solution, which the check must accept.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from conftest import ROOT
from coursekit import notebooks
from coursekit.exercises import LOG_ENV

LESSONS = notebooks.lesson_paths(ROOT)
TEMPLATE = ROOT / "authoring" / "lesson_template.ipynb"
NETWORK_ENV = "COURSEKIT_NETWORK_LOG"  # read by tests/fixtures/netguard/sitecustomize.py
MIN_WRONG_ANSWERS = 2
# Lessons whose exercises have no wrong answers yet, and the issue that adds them. Shrinks to empty.
WRONG_ANSWERS_PENDING: dict[str, str] = {}


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
        if ex.wrong is None:
            assert path.stem in WRONG_ANSWERS_PENDING, (
                f"exercise {ex.id} has no `wrong:{ex.id}` cell: add {MIN_WRONG_ANSWERS} or more wrong answers a "
                "learner really writes (see authoring/lesson_template.ipynb)")
            continue
        cell = nb.cells[ex.wrong]
        assert ex.wrong == ex.solution + 1, f"exercise {ex.id}: the wrong answers come right after the solution"
        assert cell.cell_type == "markdown" and "<details>" in cell.source, "wrong answers are folded in <details>"
        wrong = notebooks.wrong_answers(cell.source)
        assert len(wrong) >= MIN_WRONG_ANSWERS, f"exercise {ex.id} has {len(wrong)} wrong answer(s)"
        check_source = nb.cells[ex.check].source.lower()
        for number, answer in enumerate(wrong, 1):
            compile(answer.code, f"wrong answer {number} of {ex.id}", "exec")
            assert len(answer.says.split()) >= 3 and answer.says.lower() in check_source, (
                f"wrong answer {number} of {ex.id}: '# the check says: {answer.says}' must quote three or more "
                "words of one of the check's own messages (not 'your code raised ...', which any crash gets)")


def test_no_pending_lesson_is_done_already() -> None:
    for stem in WRONG_ANSWERS_PENDING:
        path = ROOT / "notebooks" / f"{stem}.ipynb"
        assert path.is_file(), f"{stem} is listed as pending but does not exist"
        found = notebooks.exercises(notebooks.read(path)).values()
        assert any(ex.wrong is None for ex in found), f"{stem} has wrong answers everywhere: remove it from the list"


def test_the_replay_plan() -> None:
    """A two-exercise notebook: the run is the notebook as written, then each exercise replayed."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    def tagged(cell, tag):  # type: ignore[no-untyped-def]
        cell.metadata["tags"] = [tag]
        return cell

    fence = "```"
    nb = new_notebook(cells=[
        new_code_cell("from coursekit.exercises import check"), new_markdown_cell("## Exercises"),
        new_code_cell("data = [1, 2]"), tagged(new_code_cell("total = None"), "starter:1"),
        tagged(new_code_cell('with check("1"):\n    assert total == 3, "add them up"'), "check:1"),
        tagged(new_markdown_cell(f"<details>\n\n{fence}python\ntotal = sum(data)\n{fence}\n</details>"), "solution:1"),
        tagged(new_markdown_cell(f"<details>\n\n{fence}python\n# the check says: add them up\ntotal = 2\n{fence}\n\n"
                                 f"{fence}python\n# the check says: add them up\ntotal = data\n{fence}\n</details>"),
               "wrong:1"),
        new_code_cell("data = [5]"), tagged(new_code_cell("double = None"), "starter:2"),
        tagged(new_code_cell('with check("2"):\n    assert double == 2 * total'), "check:2"),
        tagged(new_markdown_cell(f"<details>\n\n{fence}python\ndouble = 2 * total\n{fence}\n</details>"), "solution:2"),
    ])
    run, trials = notebooks.exercise_trials(nb)
    assert [(t.exercise, t.case, t.should_pass) for t in trials] == [
        ("1", "starter", False), ("2", "starter", False), ("1", "wrong 1", False), ("1", "wrong 2", False),
        ("1", "solution", True), ("2", "solution", True)]
    replay = [c.source for c in run.cells[len(nb.cells):] if c.cell_type == "code"]
    assert replay[0] == "data = [1, 2]", "exercise 1 is prepared again"
    assert replay[1:3] == ["# the check says: add them up\ntotal = 2\n", nb.cells[4].source]
    assert replay[3] == replay[6] == "data = [1, 2]", "and again before each of its cases"
    assert replay[9] == "data = [5]", "exercise 2's preparation is the cell after exercise 1"
    log = [{"exercise": t.exercise, "passed": t.should_pass, "reason": "add them up"} for t in trials]
    assert notebooks.judge_trials(trials, log) == []
    log[2]["reason"] = "your code raised NameError"
    assert "not 'add them up'" in notebooks.judge_trials(trials, log)[0]
    log[4]["passed"] = False
    assert len(notebooks.judge_trials(trials, log)) == 2
    assert "did a cell stop the run" in notebooks.judge_trials(trials, log[:3])[0]


def _log(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


@pytest.mark.notebooks
@pytest.mark.engines
@pytest.mark.parametrize("path", [*LESSONS, TEMPLATE], ids=_id)
def test_lesson_runs_and_its_checks_judge_right(path: Path, tmp_path: Path) -> None:
    run, trials = notebooks.exercise_trials(notebooks.read(path))
    log = tmp_path / "checks.jsonl"
    network = tmp_path / "network.log"
    guard = str(Path(__file__).parent / "fixtures" / "netguard")
    path_env = os.pathsep.join(p for p in (guard, os.environ.get("PYTHONPATH", "")) if p)
    notebooks.execute(run, path.parent, env={LOG_ENV: str(log), NETWORK_ENV: str(network), "PYTHONPATH": path_env})
    problems = notebooks.judge_trials(trials, _log(log))
    assert not problems, "\n".join(problems)
    reached = network.read_text() if network.exists() else ""
    assert not reached, f"{path.name} reached for the network (it must run offline):\n{reached[:2000]}"
