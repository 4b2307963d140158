"""The hidden-test protocol (coursekit.hidden, coursekit.grading): what the grader accepts from a kernel.

The kernel is untrusted: whatever it puts in a test cell's outputs, a cell passes only when the grader's
own check of the reported value passes, and nbgrader then scores a failed check as zero.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient.exceptions import DeadKernelError
from nbformat.v4 import new_code_cell, new_notebook, new_output
from nbgrader.preprocessors import Execute
from nbgrader.utils import determine_grade

from coursekit import grading, hidden, sandbox


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


def test_the_seed_is_reproducible_per_student_and_keyed_by_the_course_secret() -> None:
    key = b"course secret"
    assert hidden.seed(key, "ada", "lab2", "part-a-tests") == hidden.seed(key, "ada", "lab2", "part-a-tests")
    assert hidden.seed(key, "ada", "lab2", "part-a-tests") != hidden.seed(key, "bob", "lab2", "part-a-tests")
    assert hidden.seed(key, "ada", "lab2", "part-a-tests") != hidden.seed(b"other", "ada", "lab2", "part-a-tests"), (
        "without the key, graders/ does not rebuild anyone's hidden inputs")


def test_the_course_secret_is_made_once_private_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hidden.SECRET_ENV, raising=False)
    first = hidden.course_secret(tmp_path)
    path = tmp_path / hidden.SECRET_FILE
    assert len(first) >= 64 and path.stat().st_mode & 0o777 == 0o600, "random, readable by its owner only"
    assert hidden.course_secret(tmp_path) == first, "a regrade uses the same key, so the same inputs"
    (tmp_path / "another-course").mkdir()
    assert hidden.course_secret(tmp_path / "another-course") != first
    monkeypatch.setenv(hidden.SECRET_ENV, "from the environment, long enough to be a key")
    assert hidden.course_secret(tmp_path) == b"from the environment, long enough to be a key"
    monkeypatch.setenv(hidden.SECRET_ENV, "short")
    with pytest.raises(ValueError, match="too short"):
        hidden.course_secret(tmp_path)
    monkeypatch.delenv(hidden.SECRET_ENV)
    (tmp_path / "another-course" / hidden.SECRET_FILE).write_text("")
    with pytest.raises(ValueError, match="too short"):
        hidden.course_secret(tmp_path / "another-course")


def test_grading_seeds_hidden_inputs_with_the_course_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(grading.COURSE_ENV, str(_course(tmp_path)))
    calls = []
    for key in ("a" * 40, "a" * 40, "b" * 40):
        monkeypatch.setenv(hidden.SECRET_ENV, key)
        nb = new_notebook(cells=[_test_cell([])])
        pending = grading.prepare_hidden(nb, {"nbgrader": {"assignment": "labx", "student": "ada"}})
        calls.append(nb.cells[0].source.replace(pending[0].token, "TOKEN"))
    assert calls[0] == calls[1], "the same secret: the same hidden inputs (a regrade)"
    assert calls[0] != calls[2], "another secret: other inputs"
    ignored = (Path(__file__).parents[1] / ".gitignore").read_text().splitlines()
    assert hidden.SECRET_FILE in ignored, "the secret never reaches git"


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
    pending = grading.prepare_hidden(nb, resources)
    cell = nb.cells[0]
    assert "hidden_tests(" not in cell.source and "_coursekit_report(" in cell.source, "the block is replaced"
    assert "coursekit" not in str(cell.metadata), "nothing of the grader's state is put in the student's notebook"
    token = pending[0].token
    call = cell.source.split(f"_coursekit_report({token!r}, ")[1].split("\n")[0][:-1]
    cell.outputs = kernel_outputs(token, call)
    grading.verify_hidden(nb, pending, "ada", logging.getLogger("test"))
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
        grading.prepare_hidden(new_notebook(cells=[_test_cell([])]),
                               {"nbgrader": {"assignment": "labx", "student": "ada"}})


def test_planted_grader_metadata_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A submission that plants the key the grader once kept its state in is graded like any other."""
    def kernel(token: str, call: str) -> list[Any]:
        return [_report(token, _double(call))]

    monkeypatch.setenv(grading.COURSE_ENV, str(_course(tmp_path)))
    nb = new_notebook(cells=[_test_cell([]), _test_cell([])])
    nb.cells[1].metadata["nbgrader"]["grade_id"] = "part-b-tests"   # no hidden test of that name
    for cell in nb.cells:
        cell.metadata["coursekit_hidden"] = "0" * 24
    pending = grading.prepare_hidden(nb, {"nbgrader": {"assignment": "labx", "student": "ada"}})
    call = nb.cells[0].source.split(f"_coursekit_report({pending[0].token!r}, ")[1].split("\n")[0][:-1]
    nb.cells[0].outputs = kernel(pending[0].token, call)
    nb.cells[1].outputs = [_report("0" * 24, {"n": 4})]
    grading.verify_hidden(nb, pending, "ada", logging.getLogger("test"))
    assert determine_grade(nb.cells[0])[0] == 2
    assert not nb.cells[1].outputs, "a report in a cell without a hidden test is dropped"


def test_prepared_topics_and_files_are_removed_when_execution_fails(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    course = _course(tmp_path)
    (course / "graders" / "labx.py").write_text(
        "from coursekit.hidden import Hidden, scratch\n\n"
        "def part_a_tests(rng):\n"
        "    folder = scratch('labx-')\n"
        "    (folder / 'input.txt').write_text('prepared')\n"
        "    import shutil\n"
        "    return Hidden(call='double(1)', verify=lambda v: None, cleanup=lambda: shutil.rmtree(folder))\n")
    work = tmp_path / "autograded" / "ada" / "labx"
    work.mkdir(parents=True)
    monkeypatch.setenv(grading.COURSE_ENV, str(course))
    monkeypatch.setenv(sandbox.MODE_ENV, "off")

    def dies(self: Any, nb: Any, resources: Any, km: Any = None) -> Any:
        assert next(p.name for p in work.iterdir()).startswith("labx-"), "prepared inside the working copy"
        raise DeadKernelError("the kernel died")

    monkeypatch.setattr(Execute, "preprocess", dies)
    with pytest.raises(DeadKernelError):
        grading.ExecuteHiddenTests().preprocess(
            new_notebook(cells=[_test_cell([])]),
            {"nbgrader": {"assignment": "labx", "student": "ada"}, "metadata": {"path": str(work)}})
    assert not list(work.iterdir()), "the hidden test's clean-up ran although execution failed"


def test_grading_refuses_to_start_without_its_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sandbox.BWRAP_ENV, str(tmp_path / "no-bwrap"))
    with pytest.raises(sandbox.SandboxUnavailable, match=r"fetch-sandbox.*COURSEKIT_GRADER_SANDBOX=off"):
        grading.ExecuteHiddenTests().preprocess(new_notebook(cells=[]), {"nbgrader": {}, "metadata": {}})


def test_in_the_source_notebook_the_same_check_runs_in_the_kernel(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    lab = _course(tmp_path) / "source" / "labx"
    lab.mkdir(parents=True)
    monkeypatch.chdir(lab)
    hidden.hidden_tests("part-a-tests", {"double": lambda n: {"n": n * 2}})
    with pytest.raises(AssertionError, match="wrong double"):
        hidden.hidden_tests("part-a-tests", {"double": lambda n: {"n": n}})


def test_partial_credit_is_the_grader_s_and_only_when_the_visible_tests_passed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``verify`` that returns ``Partial`` earns that fraction of the cell's points (nbgrader's partial credit,
    an execute_result put first); a number the kernel sent is dropped; a visible test that failed still scores 0."""
    def course(_: Path) -> Path:
        (tmp_path / "graders").mkdir(exist_ok=True)
        (tmp_path / "graders" / "labx.py").write_text(
            "from coursekit.hidden import Hidden, Partial\n\n"
            "def part_a_tests(rng):\n"
            "    def verify(value):\n"
            "        return Partial(0.5, 'half of it') if value == {'n': 1} else None\n"
            "    return Hidden(call='double(3)', verify=verify)\n")
        return tmp_path

    monkeypatch.setattr(sys.modules[__name__], "_course", course)
    forged = new_output("execute_result", data={"text/plain": "2"}, execution_count=1)
    score, cell = _grade(tmp_path, monkeypatch, lambda token, call: [forged, _report(token, {"n": 1})])
    assert score == 1.0 and cell.outputs[0]["metadata"][grading.PARTIAL] == "half of it"
    assert [o["output_type"] for o in cell.outputs].count("execute_result") == 1, "the kernel's number is gone"
    error = new_output("error", ename="AssertionError", evalue="visible", traceback=[])
    assert _grade(tmp_path, monkeypatch, lambda token, call: [error, _report(token, {"n": 1})])[0] == 0
    assert _grade(tmp_path, monkeypatch, lambda token, call: [forged, _report(token, {"n": 6})])[0] == 2
    feedback = new_notebook(cells=[cell])
    feedback.cells[0].source = _test_cell([]).source
    grading.HideHiddenTests().preprocess(feedback, {})
    assert "Partial credit: half of it" in feedback.cells[0].outputs[1]["text"]
