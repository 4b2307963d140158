"""The hidden-test protocol (coursekit.hidden, coursekit.grading): what the grader accepts from a kernel.

The kernel is untrusted: whatever it puts in a test cell's outputs, a cell passes only when the grader's
own check of the reported value passes, and nbgrader then scores a failed check as zero.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from nbgrader.utils import determine_grade

from coursekit import grading, hidden


def test_values_cross_as_plain_json() -> None:
    value = ({("2026-11-02T09:00:00Z", "north"): 10.5}, ["e4"], 3, None, True)
    assert hidden.decode(hidden.encode(value)) == [{("2026-11-02T09:00:00Z", "north"): 10.5}, ["e4"], 3, None, True]

    class AlwaysEqual(dict):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = None  # type: ignore[assignment]

    crossed = hidden.decode(hidden.encode(AlwaysEqual()))
    assert type(crossed) is dict and crossed != {"anything": 1}, "nothing of the kernel's classes survives"
    with pytest.raises(TypeError, match="returned a object"):
        hidden.encode(object())


def test_the_seed_is_reproducible_per_student() -> None:
    assert hidden.seed("ada", "lab2", "part-a-tests") == hidden.seed("ada", "lab2", "part-a-tests")
    assert hidden.seed("ada", "lab2", "part-a-tests") != hidden.seed("bob", "lab2", "part-a-tests")


def _course(tmp_path: Path) -> Path:
    (tmp_path / "graders").mkdir()
    (tmp_path / "graders" / "labx.py").write_text(
        "from coursekit.hidden import Hidden\n\n"
        "def part_a_tests(rng):\n"
        "    n = rng.randrange(10, 99)\n"
        "    def verify(value):\n"
        "        assert value == {'n': n * 2}, 'wrong double'\n"
        "    return Hidden(call=f'double({n})', verify=verify)\n")
    return tmp_path


def _test_cell(outputs: list[Any]) -> nbformat.NotebookNode:
    cell = new_code_cell("assert double(2) == {'n': 4}\n### BEGIN HIDDEN TESTS\n"
                         "hidden_tests('part-a-tests', globals())\n### END HIDDEN TESTS")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "part-a-tests", "points": 2,
                                 "locked": True, "schema_version": 3}
    cell.outputs = outputs
    return cell


def _grade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_outputs: Any) -> tuple[float, Any]:
    """Prepare a one-cell notebook, let ``kernel_outputs(token, call)`` play the kernel, verify, score."""
    monkeypatch.setenv(grading.COURSE_ENV, str(_course(tmp_path)))
    nb = new_notebook(cells=[_test_cell([])])
    resources = {"nbgrader": {"assignment": "labx", "student": "ada"}}
    nb, resources = grading.PrepareHiddenTests().preprocess(nb, resources)
    cell = nb.cells[0]
    assert "hidden_tests(" not in cell.source and "_coursekit_report(" in cell.source, "the block is replaced"
    token = cell.metadata["coursekit_hidden"]
    call = cell.source.split(f"_coursekit_report({token!r}, ")[1].split("\n")[0][:-1]
    cell.outputs = kernel_outputs(token, call)
    nb, _ = grading.VerifyHiddenTests().preprocess(nb, resources)
    assert nb.cells[0].source == _test_cell([]).source, "the cell is restored as written (nbgrader's checksum)"
    return determine_grade(nb.cells[0])[0], nb.cells[0]


def _report(token: str, value: Any) -> Any:
    return new_output("display_data", data={hidden.MIME: {"token": token, "value": hidden.encode(value)}})


def _double(call: str) -> dict[str, int]:
    return {"n": int(call[len("double("):-1]) * 2}


def test_a_right_answer_passes_and_the_report_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    score, cell = _grade(tmp_path, monkeypatch, lambda token, call: [_report(token, _double(call))])
    assert score == 2
    assert all(hidden.MIME not in o.get("data", {}) for o in cell.outputs)
    assert "Hidden tests passed" in cell.outputs[-1]["text"]


@pytest.mark.parametrize("case", ["wrong value", "no report", "forged token", "two reports", "partial credit",
                                  "partial credit, then an error"])
def test_whatever_the_kernel_prints_a_failed_check_scores_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               case: str) -> None:
    def kernel(token: str, call: str) -> list[Any]:
        passed = new_output("stream", name="stdout", text="All tests passed.\n")
        return {
            "wrong value": [passed, _report(token, {"n": 0})],
            "no report": [passed],
            "forged token": [passed, _report("0" * 24, _double(call))],
            "two reports": [_report(token, {"n": 0}), _report(token, _double(call))],
            # nbgrader gives partial credit for a number as a test cell's result
            "partial credit": [new_output("execute_result", data={"text/plain": "2"}, execution_count=1),
                               _report(token, {"n": 0})],
            # ... even when the kernel's own error comes after the number
            "partial credit, then an error": [
                new_output("execute_result", data={"text/plain": "2"}, execution_count=1),
                new_output("error", ename="AssertionError", evalue="", traceback=[])],
        }[case]

    score, cell = _grade(tmp_path, monkeypatch, kernel)
    assert score == 0
    assert cell.outputs[0]["ename"] == "HiddenTestFailed"


def test_a_grading_machine_problem_is_not_blamed_on_the_student(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    course = _course(tmp_path)
    (course / "graders" / "labx.py").write_text("def part_a_tests(rng):\n    raise ConnectionError('broker down')\n")
    monkeypatch.setenv(grading.COURSE_ENV, str(course))
    with pytest.raises(RuntimeError, match=r"not of the submission.*broker down"):
        grading.PrepareHiddenTests().preprocess(new_notebook(cells=[_test_cell([])]),
                                                {"nbgrader": {"assignment": "labx", "student": "ada"}})


def test_in_the_source_notebook_the_same_check_runs_in_the_kernel(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    lab = _course(tmp_path) / "source" / "labx"
    lab.mkdir(parents=True)
    monkeypatch.chdir(lab)
    hidden.hidden_tests("part-a-tests", {"double": lambda n: {"n": n * 2}})
    with pytest.raises(AssertionError, match="wrong double"):
        hidden.hidden_tests("part-a-tests", {"double": lambda n: {"n": n}})
