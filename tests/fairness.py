"""A lab grades fairly: every plausible wrong solution loses points in its own part, and only there.

Shared by ``tests/test_lab<N>_fairness.py``. Each wrong solution (``EACH_WRONG`` in
``tests/lab_cases/<lab>.py``) is the reference with one part's solution cell replaced. Grading it whole
through nbgrader for each of them would cost minutes, so:

* **statically** (no kernel): each part's test cells use only what that part's solution provides (a
  function, a variable, or the file a ``%%writefile`` cell writes) and no name that another part's cells
  define, and each wrong solution provides only its part's name. So replacing one part's solution cannot
  change another part's score: the other parts score as the reference does, which ``tests/test_labs.py``
  proves gets every point (and its ``alternative`` case, a correct solution in another style, too);
* **with the real grader** (``coursekit.grading.ExecuteHiddenTests``, sandbox off: the sandbox is tested
  elsewhere), in **one** kernel: the setup cell, then for each wrong solution its cell, its part's locked
  cells, and each test cell it must fail, split in two: the hidden block alone, which must fail or earn
  less than the cell's points (judged by the grader, on the hidden data), and the visible tests alone,
  at least one of which must fail (the learner sees the mistake before submitting), unless the part gives
  partial credit (its visible tests then show the score instead of failing).
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import re
import shutil
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat

from conftest import ROOT
from coursekit import grading, hidden, sandbox

_WRITEFILE = re.compile(r"\A%%writefile\s+(\S+)")


def cases(lab: str) -> ModuleType:
    path = ROOT / "tests" / "lab_cases" / f"{lab}.py"
    spec = importlib.util.spec_from_file_location(f"{lab}_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def meta(cell: nbformat.NotebookNode) -> dict[str, Any]:
    return dict(cell.metadata.get("nbgrader", {}))


def part(grade_id: str) -> str:
    return grade_id.split("-")[1]


def source(lab: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "source" / lab / f"{lab}.ipynb", as_version=4)


def test_cells(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    return {meta(c)["grade_id"]: c for c in nb.cells
            if c.cell_type == "code" and meta(c).get("grade") and not meta(c).get("solution")}


def names(code: str) -> tuple[set[str], set[str]]:
    """The names a cell loads, and the names it binds anywhere (assignments, parameters, defs, imports)."""
    if (written := _WRITEFILE.match(code)) is not None:
        return set(), {written.group(1)}
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


def provides(code: str) -> set[str]:
    """What a solution cell provides: its top-level functions, classes and variables, or the file it writes."""
    if (written := _WRITEFILE.match(code)) is not None:
        return {written.group(1)}
    found = set()
    for node in ast.parse(code).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            found.add(node.name)
        elif isinstance(node, ast.Assign):
            found |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return found


def context(nb: nbformat.NotebookNode, of: str) -> list[nbformat.NotebookNode]:
    """A part's locked code cells that are neither solution nor test (a sample, say)."""
    return [c for c in nb.cells if c.cell_type == "code" and meta(c).get("grade_id", "").startswith(f"part-{of}-")
            and not meta(c).get("grade") and not meta(c).get("solution")]


def check_parts_are_independent(lab: str, parts: dict[str, str]) -> None:
    """Each part's test cells use only their own part's name; each solution provides only its part's."""
    nb = source(lab)
    tests = test_cells(nb)
    solutions = {meta(c)["grade_id"]: c.source for c in nb.cells if meta(c).get("solution")
                 and c.cell_type == "code"}
    setup = names(next(c.source for c in nb.cells if meta(c).get("grade_id") == "setup"))[1]
    assert {part(g) for g in tests} == set(parts), "every autograded part has test cells"
    for grade_id, code in solutions.items():
        assert provides(code) == {parts[part(grade_id)]}, f"{grade_id} provides its part's name only"
    for grade_id, cell in tests.items():
        mine = part(grade_id)
        own = [names(c.source) for g, c in tests.items() if part(g) == mine]
        own += [names(c.source) for c in context(nb, mine)]
        others = set().union(*(names(c.source)[1] for g, c in tests.items() if part(g) != mine),
                             *(names(c.source)[1] for p in parts if p != mine for c in context(nb, p)))
        loads, _ = names(cell.source)
        files = {n.value for n in ast.walk(ast.parse(cell.source)) if isinstance(n, ast.Constant)
                 and n.value in parts.values()}   # the file a %%writefile solution writes
        assert (loads | files) & set(parts.values()) == {parts[mine]}, f"{grade_id} uses only {parts[mine]}"
        bound_here = setup | set().union(*(b for _, b in own)) | set(dir(builtins))
        borrowed = (loads - bound_here) & others
        assert not borrowed, f"{grade_id} uses names that another part's test cells define: {sorted(borrowed)}"
        assert re.search(rf"hidden_tests\(\"{grade_id}\", globals\(\)\)", cell.source), "its hidden test is its own"


def check_each_wrong_replaces_one_part(lab: str, parts: dict[str, str]) -> None:
    tests = test_cells(source(lab))
    each_wrong = cases(lab).EACH_WRONG
    for name, (grade_id, code, failing) in each_wrong.items():
        assert provides(code) == {parts[part(grade_id)]}, f"{name} provides {parts[part(grade_id)]} and nothing else"
        assert failing and failing <= {g for g in tests if part(g) == part(grade_id)}, f"{name} fails its own part"
    assert {part(g) for g, _, _ in each_wrong.values()} == set(parts), "every autograded part has wrong solutions"


def _copy(cell: nbformat.NotebookNode, keep: str) -> nbformat.NotebookNode:
    """A fresh copy of a test cell (its own id) with only its ``"hidden"`` block or only its ``"visible"`` tests."""
    at = cell.source.index(grading.BEGIN_HIDDEN)
    copy = nbformat.v4.new_code_cell(cell.source[at:] if keep == "hidden" else cell.source[:at])
    copy.metadata = nbformat.from_dict({"nbgrader": meta(cell)})
    return copy


def _fresh(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    copy = nbformat.v4.new_code_cell(cell.source)
    copy.metadata = nbformat.from_dict(dict(cell.metadata))
    return copy


def _grade(nb: nbformat.NotebookNode, work: Path, lab: str) -> nbformat.NotebookNode:
    """Run ``nb`` through the real grading preprocessor, in a thread whose event loop is closed afterwards."""
    done: dict[str, Any] = {}

    def run() -> None:
        from jupyter_core.utils import ensure_event_loop

        try:
            executor = grading.ExecuteHiddenTests(kernel_name=grading.GRADER_KERNEL, timeout=120)
            done["nb"] = executor.preprocess(nb, {"nbgrader": {"assignment": lab, "student": "fairness"},
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


def _earned_less(cell: nbformat.NotebookNode) -> bool:
    """The grader judged the cell wrong: a hidden-test failure, or partial credit below its points."""
    first = cell.outputs[0] if cell.outputs else {}
    if first.get("output_type") == "error":
        # judged: the call returned, and the grader found its value (or what it left behind) wrong
        return (first.get("ename") == "HiddenTestFailed"
                and first.get("evalue") != "the hidden tests did not run to the end")
    if first.get("output_type") == "execute_result" and grading.PARTIAL in first.get("metadata", {}):
        return float(first["data"]["text/plain"]) < float(meta(cell).get("points", 0))
    return False


def check_every_wrong_solution_loses_its_part(lab: str, work: Path, monkeypatch: Any, secret: str,
                                              seen_elsewhere: frozenset[str] = frozenset()) -> None:
    """Grade every wrong solution in one kernel (see the module's docstring). ``seen_elsewhere``: test cells
    whose visible tests need not fail in the grader's kernel (they give partial credit and print the
    score, or they cannot run under its memory cap); the lab's fairness test shows them another way."""
    monkeypatch.setenv(grading.COURSE_ENV, str(ROOT))
    monkeypatch.setenv(hidden.SECRET_ENV, secret)
    monkeypatch.setenv(sandbox.MODE_ENV, "off")
    monkeypatch.setenv("JUPYTER_PATH", grading.jupyter_data_dir())
    nb = source(lab)
    tests = test_cells(nb)
    cells = [_fresh(c) for c in nb.cells if meta(c).get("grade_id") == "setup"]
    plan: list[tuple[str, str, str]] = []   # (wrong solution, test cell, how) for each cell that must fail
    for name, (grade_id, code, failing) in cases(lab).EACH_WRONG.items():
        solution = nbformat.v4.new_code_cell(code.strip() + "\n")
        solution.metadata["nbgrader"] = {"grade": False, "solution": True, "grade_id": grade_id, "locked": False}
        cells.append(solution)
        cells += [_fresh(c) for c in context(nb, part(grade_id))]
        for test in sorted(failing):
            cells += [_copy(tests[test], "hidden"), _copy(tests[test], "visible")]
            plan += [(name, test, "hidden"), (name, test, "visible")]
    folder = work / "autograded" / "fairness" / lab
    folder.mkdir(parents=True)
    for path in (ROOT / "source" / lab).iterdir():   # the lab's files beside its notebook, as nbgrader copies them
        if path.is_file() and path.suffix != ".ipynb":
            shutil.copy2(path, folder / path.name)
    graded = _grade(nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata), folder, lab)
    first, *rest = graded.cells
    assert not [o for o in first.outputs if o["output_type"] == "error"], "the setup cell runs"
    outcomes = [c for c in rest if meta(c).get("grade")]
    assert len(outcomes) == len(plan)
    failed = {key: any(o["output_type"] == "error" for o in cell.outputs)
              for key, cell in zip(plan, outcomes, strict=True)}
    judged = {key: _earned_less(cell) for key, cell in zip(plan, outcomes, strict=True) if key[2] == "hidden"}
    escaped = sorted(f"{name}: {test}" for (name, test, _), yes in judged.items() if not yes)
    assert not escaped, f"wrong solutions that keep their points in the hidden tests (judged by the grader): {escaped}"
    unseen = sorted(name for name in {n for n, t, _ in plan if t not in seen_elsewhere}
                    if not any(yes for (n, _, how), yes in failed.items() if n == name and how == "visible"))
    assert not unseen, f"wrong solutions that pass every visible test of their part: {unseen}"


def lab_tests(lab: str, parts: dict[str, str], secret: str, secret_env: str) -> tuple[Any, Any, Any]:
    """The three fairness tests of a lab whose parts are plain functions (Labs 2 and 3): assign them to
    ``test_…`` names in ``tests/test_lab<N>_fairness.py``. The hidden data uses the fixed course secret
    ``secret`` (the same on every run), or ``$<secret_env>`` to try others."""
    import os

    import pytest

    def test_each_part_s_tests_call_only_that_part_s_function() -> None:
        check_parts_are_independent(lab, parts)

    def test_each_wrong_solution_replaces_one_part_with_its_function_only() -> None:
        check_each_wrong_replaces_one_part(lab, parts)

    @pytest.mark.notebooks
    @pytest.mark.engines
    @pytest.mark.cost(f"lab {lab}: fairness")
    def test_every_wrong_solution_loses_its_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                bootstrap: str) -> None:
        check_every_wrong_solution_loses_its_part(lab, tmp_path, monkeypatch, os.environ.get(secret_env, secret))

    return (test_each_part_s_tests_call_only_that_part_s_function,
            test_each_wrong_solution_replaces_one_part_with_its_function_only,
            test_every_wrong_solution_loses_its_part)
