"""The exercise mechanism itself: self-checks, solution substitution, notebook cleaning."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from coursekit import notebooks
from coursekit.exercises import LOG_ENV, check


def test_passing_check_says_so_and_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(LOG_ENV, str(log))
    with check("1.1") as outcome:
        assert 1 + 1 == 2
    assert outcome.passed
    assert "✅ Exercise 1.1: correct." in capsys.readouterr().out
    assert json.loads(log.read_text()) == {"exercise": "1.1", "passed": True, "reason": ""}


def test_failing_check_explains_and_does_not_raise(capsys: pytest.CaptureFixture[str]) -> None:
    with check("1.2") as outcome:
        assert [] == [1], "the list should hold one order"
    assert not outcome
    assert "not yet. the list should hold one order" in capsys.readouterr().out


def test_errors_in_learner_code_are_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    with check("1.3") as outcome:
        undefined_function()  # type: ignore[name-defined]  # noqa: F821
    assert not outcome
    assert "NameError" in capsys.readouterr().out


def _lesson() -> nbformat.NotebookNode:
    starter = new_code_cell("answer = None", metadata={"tags": ["starter:9.1"]})
    checker = new_code_cell('with check("9.1"):\n    assert answer == 42', metadata={"tags": ["check:9.1"]})
    solution = new_markdown_cell("<details>\n\n```python\nanswer = 6 * 7\n```\n</details>",
                                 metadata={"tags": ["solution:9.1"]})
    return new_notebook(cells=[starter, checker, solution])


def test_exercise_cells_are_found_by_their_tags() -> None:
    nb = _lesson()
    found = notebooks.exercises(nb)
    assert (found["9.1"].starter, found["9.1"].check, found["9.1"].solution, found["9.1"].wrong) == (0, 1, 2, None)
    assert notebooks.solution_code(nb.cells[2].source) == "answer = 6 * 7\n"


def test_wrong_answers_say_what_their_check_says() -> None:
    cell = ("<details><summary>Common mistakes</summary>\n\n**Adding.**\n\n```python\n"
            "# the check says: multiply\nanswer = 6 + 7\n```\n\n```python\n#  The check says:  not None \n"
            "answer = None\n```\n</details>")
    found = notebooks.wrong_answers(cell)
    assert [w.says for w in found] == ["multiply", "not None"]
    assert found[0].code == "# the check says: multiply\nanswer = 6 + 7\n"
    with pytest.raises(ValueError, match="starts with '# the check says"):
        notebooks.wrong_answers("```python\nanswer = 1\n```")


@pytest.mark.parametrize("fence", ["```py", "```python ", "~~~python", "```"])
def test_a_block_that_would_be_skipped_is_an_error(fence: str) -> None:
    cell = f"```python\n# the check says: multiply them\nanswer = 1\n```\n\n{fence}\nanswer = 2\n```"
    with pytest.raises(ValueError, match="open with exactly"):
        notebooks.wrong_answers(cell)


def test_solution_cell_needs_one_code_block() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        notebooks.solution_code("no code here")


def test_clean_strips_outputs_and_keeps_tags() -> None:
    nb = _lesson()
    nb.cells[0].outputs = [new_output("stream", name="stdout", text="hi")]
    nb.cells[0].execution_count = 3
    nb.cells[0].metadata["collapsed"] = True
    nb.metadata["widgets"] = {}
    assert not notebooks.is_clean(nb)
    cleaned = notebooks.clean(nb)
    assert notebooks.is_clean(cleaned)
    assert cleaned.cells[0].metadata == {"tags": ["starter:9.1"]}
    assert "widgets" not in cleaned.metadata
