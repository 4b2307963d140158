"""Lab 2 grades fairly: every plausible wrong solution loses points in its own part, and only there.

Each wrong solution (``EACH_WRONG`` in tests/lab_cases/lab2_realtime_orders.py) is the reference with one
part's solution cell replaced. Grading it whole through nbgrader for each of them would cost minutes, so:

* **statically** (no kernel): each part's test cells call only that part's function and use no name that
  another part's cells define, and each wrong solution cell defines only its part's function. So
  replacing one part's solution cannot change another part's score: the other parts score as the
  reference does, which ``tests/test_labs.py`` proves gets every point (and its ``alternative`` case, a
  correct solution in another style, too);
* **with the real grader** (``coursekit.grading.ExecuteHiddenTests``, sandbox off: the sandbox is tested
  elsewhere), in **one** kernel: the setup cell, then for each wrong solution its cell, its part's locked
  sample cells, and each test cell it must fail, split in two: the hidden block alone, which must fail
  (judged by the grader, on the hidden data), and the visible tests alone, at least one of which must
  fail (the learner sees the mistake before submitting). As graded, a cell runs its visible tests and
  then the same hidden block on the same data (hidden inputs are seeded by the secret, the student and
  the cell), so it fails whenever its hidden block alone fails.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import os
import re
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import pytest

from conftest import ROOT
from coursekit import grading, hidden, sandbox

LAB = "lab2_realtime_orders"
SOURCE = ROOT / "source" / LAB / f"{LAB}.ipynb"
PARTS = {"a": "publish_orders", "b": "windowed_revenue", "c": "route_malformed", "d": "count_paid"}
SECRET = "lab2 fairness: a fixed course secret, so the hidden data is the same on every run"


def _cases() -> ModuleType:
    path = ROOT / "tests" / "lab_cases" / f"{LAB}.py"
    spec = importlib.util.spec_from_file_location("lab2_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _meta(cell: nbformat.NotebookNode) -> dict[str, Any]:
    return dict(cell.metadata.get("nbgrader", {}))


def _part(grade_id: str) -> str:
    return grade_id.split("-")[1]


def _source() -> nbformat.NotebookNode:
    return nbformat.read(SOURCE, as_version=4)


def _test_cells(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    return {_meta(c)["grade_id"]: c for c in nb.cells
            if c.cell_type == "code" and _meta(c).get("grade") and not _meta(c).get("solution")}


def _names(code: str) -> tuple[set[str], set[str]]:
    """The names a cell loads, and the names it binds anywhere (assignments, parameters, defs, imports)."""
    loads, binds = set(), set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name):
            (loads if isinstance(node.ctx, ast.Load) else binds).add(node.id)
        elif isinstance(node, ast.arg):
            binds.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            binds.add(node.name)
        elif isinstance(node, ast.alias):
            binds.add((node.asname or node.name).split(".")[0])
    return loads, binds


def _defines(code: str) -> set[str]:
    """The top-level functions and classes a solution cell defines."""
    return {n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef | ast.ClassDef)}


def test_each_part_s_tests_call_only_that_part_s_function() -> None:
    nb = _source()
    tests = _test_cells(nb)
    solutions = {_meta(c)["grade_id"]: c.source for c in nb.cells if _meta(c).get("solution")
                 and c.cell_type == "code"}
    setup = _names(next(c.source for c in nb.cells if _meta(c).get("grade_id") == "setup"))[1]
    assert {_part(g) for g in tests} == set(PARTS), "every autograded part has test cells"
    for grade_id, code in solutions.items():
        assert _defines(code) == {PARTS[_part(grade_id)]}, f"{grade_id} defines its part's function only"
    for grade_id, cell in tests.items():
        part = _part(grade_id)
        own = [_names(c.source) for g, c in tests.items() if _part(g) == part]
        own += [_names(c.source) for c in _context(nb, part)]
        others = set().union(*(_names(c.source)[1] for g, c in tests.items() if _part(g) != part),
                             *(_names(c.source)[1] for p in PARTS if p != part for c in _context(nb, p)))
        loads, _ = _names(cell.source)
        assert loads & set(PARTS.values()) == {PARTS[part]}, f"{grade_id} calls only {PARTS[part]}"
        bound_here = setup | set().union(*(b for _, b in own)) | set(dir(builtins))
        borrowed = (loads - bound_here) & others
        assert not borrowed, f"{grade_id} uses names that another part's test cells define: {sorted(borrowed)}"
        assert re.search(rf"hidden_tests\(\"{grade_id}\", globals\(\)\)", cell.source), "its hidden test is its own"


def test_each_wrong_solution_replaces_one_part_with_its_function_only() -> None:
    cases = _cases()
    tests = _test_cells(_source())
    for name, (grade_id, code, failing) in cases.EACH_WRONG.items():
        part = _part(grade_id)
        assert _defines(code) == {PARTS[part]}, f"{name} defines {PARTS[part]} and nothing else"
        assert failing and failing <= {g for g in tests if _part(g) == part}, f"{name} fails cells of its own part"
    parts_covered = {_part(g) for g, _, _ in cases.EACH_WRONG.values()}
    assert parts_covered == set(PARTS), "every autograded part has wrong solutions"


def _copy(cell: nbformat.NotebookNode, keep: str) -> nbformat.NotebookNode:
    """A fresh copy of a test cell (its own id) with only its ``"hidden"`` block or only its ``"visible"`` tests."""
    at = cell.source.index(grading.BEGIN_HIDDEN)
    copy = nbformat.v4.new_code_cell(cell.source[at:] if keep == "hidden" else cell.source[:at])
    copy.metadata = nbformat.from_dict({"nbgrader": _meta(cell)})
    return copy


def _fresh(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    copy = nbformat.v4.new_code_cell(cell.source)
    copy.metadata = nbformat.from_dict(dict(cell.metadata))
    return copy


def _context(nb: nbformat.NotebookNode, part: str) -> list[nbformat.NotebookNode]:
    """A part's locked code cells that are neither solution nor test (Part B's sample)."""
    return [c for c in nb.cells if c.cell_type == "code" and _meta(c).get("grade_id", "").startswith(f"part-{part}-")
            and not _meta(c).get("grade") and not _meta(c).get("solution")]


def _grade(nb: nbformat.NotebookNode, work: Path) -> nbformat.NotebookNode:
    """Run ``nb`` through the real grading preprocessor, in a thread whose event loop is closed afterwards."""
    done: dict[str, Any] = {}

    def run() -> None:
        from jupyter_core.utils import ensure_event_loop

        try:
            executor = grading.ExecuteHiddenTests(kernel_name=grading.GRADER_KERNEL, timeout=120)
            done["nb"] = executor.preprocess(nb, {"nbgrader": {"assignment": LAB, "student": "fairness"},
                                                  "metadata": {"path": str(work)}})[0]
        except BaseException as exc:  # noqa: BLE001 - raised again in the test's thread
            done["error"] = exc
        finally:
            ensure_event_loop().close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in done:
        raise done["error"]
    return done["nb"]


@pytest.mark.notebooks
@pytest.mark.engines
@pytest.mark.cost("lab lab2_realtime_orders: fairness")
def test_every_wrong_solution_loses_its_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bootstrap: str) -> None:
    monkeypatch.setenv(grading.COURSE_ENV, str(ROOT))
    monkeypatch.setenv(hidden.SECRET_ENV, os.environ.get("LAB2_FAIRNESS_SECRET", SECRET))
    monkeypatch.setenv(sandbox.MODE_ENV, "off")
    monkeypatch.setenv("JUPYTER_PATH", grading.jupyter_data_dir())
    source = _source()
    tests = _test_cells(source)
    cells = [_fresh(c) for c in source.cells if _meta(c).get("grade_id") == "setup"]
    plan: list[tuple[str, str, str]] = []   # (wrong solution, test cell, how) for each cell that must fail
    for name, (grade_id, code, failing) in _cases().EACH_WRONG.items():
        solution = nbformat.v4.new_code_cell(code.strip() + "\n")
        solution.metadata["nbgrader"] = {"grade": False, "solution": True, "grade_id": grade_id, "locked": False}
        cells.append(solution)
        cells += [_fresh(c) for c in _context(source, _part(grade_id))]
        for test in sorted(failing):
            cells += [_copy(tests[test], "hidden"), _copy(tests[test], "visible")]
            plan += [(name, test, "hidden"), (name, test, "visible")]
    nb = nbformat.v4.new_notebook(cells=cells, metadata=source.metadata)
    work = tmp_path / "autograded" / "fairness" / LAB
    work.mkdir(parents=True)
    graded = _grade(nb, work)
    setup, *rest = graded.cells
    assert not [o for o in setup.outputs if o["output_type"] == "error"], "the setup cell runs"
    outcomes = [c for c in rest if _meta(c).get("grade")]
    assert len(outcomes) == len(plan)
    failed = {(name, test, how): any(o["output_type"] == "error" for o in cell.outputs)
              for (name, test, how), cell in zip(plan, outcomes, strict=True)}
    # judged: the call returned, and the grader found its value (or what it left in Kafka, SQLite) wrong
    judged = {(name, test, how): cell.outputs[0].get("ename") == "HiddenTestFailed"
              and cell.outputs[0].get("evalue") != "the hidden tests did not run to the end"
              for (name, test, how), cell in zip(plan, outcomes, strict=True) if how == "hidden"}
    escaped = sorted(f"{name}: {test}" for (name, test, how), yes in judged.items() if not yes)
    assert not escaped, f"wrong solutions that pass the hidden tests (judged by the grader): {escaped}"
    unseen = sorted(name for name in {n for n, _, _ in plan}
                    if not any(yes for (n, _, how), yes in failed.items() if n == name and how == "visible"))
    assert not unseen, f"wrong solutions that pass every visible test of their part: {unseen}"
