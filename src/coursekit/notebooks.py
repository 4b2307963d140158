"""Authoring tools for the course's notebooks: cleaning, exercises, execution.

Used by the test suite, the benchmark and ``coursekit clean``; learners never need it.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

KEEP_CELL_METADATA = ("tags", "nbgrader", "jupyter", "deletable", "editable")
KEEP_NB_METADATA = ("kernelspec", "language_info")
ROLES = ("starter", "check", "solution", "wrong")
_CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
_CHECK_SAYS = re.compile(r"\A[ \t]*#[ \t]*the check says:[ \t]*(.+?)[ \t]*$", re.MULTILINE | re.IGNORECASE)


def read(path: str | Path) -> NotebookNode:
    """Read a notebook (nbformat 4)."""
    return nbformat.read(str(path), as_version=4)


def clean(nb: NotebookNode) -> NotebookNode:
    """Return ``nb`` without outputs, execution counts or editor metadata (tags and nbgrader kept)."""
    nb = copy.deepcopy(nb)
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in KEEP_NB_METADATA}
    if "language_info" in nb.metadata:
        nb.metadata["language_info"] = {"name": nb.metadata["language_info"].get("name", "python")}
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in KEEP_CELL_METADATA}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def is_clean(nb: NotebookNode) -> bool:
    """True when ``nb`` has no outputs and no execution counts."""
    return all(not (c.get("outputs") or c.get("execution_count")) for c in nb.cells if c.cell_type == "code")


def write_clean(path: str | Path) -> bool:
    """Clean the notebook at ``path`` in place; return ``True`` if it changed."""
    nb = read(path)
    cleaned = clean(nb)
    if cleaned == nb:
        return False
    nbformat.write(cleaned, str(path))
    return True


@dataclass
class Exercise:
    """The cells of one exercise, by index into the notebook's cells."""

    id: str
    starter: int | None = None
    check: int | None = None
    solution: int | None = None
    wrong: int | None = None

    @property
    def last(self) -> int:
        """The index of the exercise's last cell."""
        return max(i for i in (self.starter, self.check, self.solution, self.wrong) if i is not None)


@dataclass(frozen=True)
class WrongAnswer:
    """A plausible wrong answer to an exercise, and (a part of) what its check must say about it."""

    code: str
    says: str


def exercises(nb: NotebookNode) -> dict[str, Exercise]:
    """Find the exercises of a lesson by their ``starter:``/``check:``/``solution:``/``wrong:`` cell tags."""
    found: dict[str, Exercise] = {}
    for index, cell in enumerate(nb.cells):
        for tag in cell.metadata.get("tags", []):
            role, sep, ident = tag.partition(":")
            if sep and role in ROLES:
                setattr(found.setdefault(ident, Exercise(ident)), role, index)
    return found


def _code_blocks(markdown: str) -> list[str]:
    """The ```python blocks of a markdown cell; any other fence is an error, not silently skipped."""
    markdown = markdown.replace("\r\n", "\n")
    fences = [line for line in markdown.splitlines() if line.lstrip().startswith(("```", "~~~"))]
    openings = fences[0::2]
    if len(fences) % 2 or any(line != "```python" for line in openings):
        raise ValueError(f"code blocks here open with exactly ```python (alone on its line) and close with ```; "
                         f"found the fences {fences}")
    return _CODE_BLOCK.findall(markdown)


def solution_code(markdown: str) -> str:
    """The reference solution: the fenced ```python block of a ``solution:`` markdown cell."""
    blocks = _code_blocks(markdown)
    if len(blocks) != 1:
        raise ValueError(f"a solution cell needs exactly one ```python block, found {len(blocks)}")
    return blocks[0]


def wrong_answers(markdown: str) -> list[WrongAnswer]:
    """The wrong answers of a ``wrong:`` markdown cell: each ```python block, whose first line is
    ``# the check says: <words of the check's message>``."""
    found = []
    for block in _code_blocks(markdown):
        says = _CHECK_SAYS.match(block)
        if says is None:
            raise ValueError("each wrong answer's block starts with '# the check says: <what the check says>'; "
                             f"this one starts {block.splitlines()[0] if block.strip() else '(empty)'!r}")
        found.append(WrongAnswer(block, says.group(1)))
    return found


@dataclass(frozen=True)
class Trial:
    """One execution of an exercise's check in :func:`exercise_trials`: what ran before it, what it must say."""

    exercise: str
    case: str               # "starter", "wrong 1", "wrong 2", ..., "solution"
    should_pass: bool
    says: str = ""          # for a wrong answer: words its check's message must contain


def _preparation(nb: NotebookNode, found: dict[str, Exercise], ex: Exercise) -> list[int]:
    """Code cells an exercise's replay runs again first: those between the previous exercise (or the
    ``## Exercises`` heading) and its starter, which set up its data and helpers."""
    assert ex.starter is not None
    before = [other.last for other in found.values() if other.last < ex.starter]
    if before:
        start = max(before)
    else:
        headings = [i for i, c in enumerate(nb.cells[:ex.starter])
                    if c.cell_type == "markdown" and re.search(r"^## Exercises", c.source, re.MULTILINE)]
        start = headings[-1] if headings else ex.starter
    roles = {i for other in found.values() for i in (other.starter, other.check, other.solution, other.wrong)}
    return [i for i in range(start + 1, ex.starter) if nb.cells[i].cell_type == "code" and i not in roles]


def exercise_trials(nb: NotebookNode) -> tuple[NotebookNode, list[Trial]]:
    """``nb`` as written, followed by a replay of every exercise; and the check results it must log.

    One kernel runs it all: first every cell as written (each untouched starter must fail its check,
    and nothing may raise, as in a learner's Restart & Run All); then, exercise by exercise, each wrong
    answer followed by the check (it must fail, saying what the wrong answer's ``# the check says:``
    line says), and the reference solution followed by the check (it must pass), each case after the
    exercise's preparation cells run again (so a wrong answer that mutates the data cannot change the
    next case's). Data defined before ``## Exercises`` is not prepared again: an exercise's checks
    should not depend on anything an earlier exercise may change. Solutions stay defined, so a later
    exercise may build on an earlier one's.
    """
    from nbformat.v4 import new_code_cell, new_markdown_cell

    found = exercises(nb)
    run = copy.deepcopy(nb)
    trials = [Trial(ex.id, "starter", False) for ex in sorted(found.values(), key=lambda e: e.check or 0)]
    for ex in sorted(found.values(), key=lambda e: e.starter or 0):
        if None in (ex.starter, ex.check, ex.solution):
            raise ValueError(f"exercise {ex.id} needs a starter, a check and a solution cell")
        check_source = nb.cells[ex.check].source
        preparation = [nb.cells[i].source for i in _preparation(nb, found, ex)]
        run.cells.append(new_markdown_cell(f"## Replay of exercise {ex.id}"))
        wrongs = wrong_answers(nb.cells[ex.wrong].source) if ex.wrong is not None else []
        cases = [(f"wrong {n}", w.code, False, w.says) for n, w in enumerate(wrongs, 1)]
        cases.append(("solution", solution_code(nb.cells[ex.solution].source), True, ""))
        for case, code, should_pass, says in cases:  # each case starts from freshly prepared data
            run.cells += [*(new_code_cell(source) for source in preparation), new_code_cell(code),
                          new_code_cell(check_source)]
            trials.append(Trial(ex.id, case, should_pass, says))
    return run, trials


def judge_trials(trials: list[Trial], log: list[dict[str, object]]) -> list[str]:
    """What went wrong, comparing the planned ``trials`` with the check log (in execution order)."""
    problems = []
    if [t.exercise for t in trials] != [entry["exercise"] for entry in log]:
        return [f"the checks ran as {[e['exercise'] for e in log]}, expected {[t.exercise for t in trials]} "
                "(did a cell stop the run, or a check not use `with check(...)`?)"]
    for trial, entry in zip(trials, log, strict=True):
        passed, reason = bool(entry["passed"]), str(entry.get("reason", ""))
        where = f"exercise {trial.exercise}, {trial.case}"
        if passed != trial.should_pass:
            problems.append(f"{where}: the check {'passed' if passed else 'failed'} ({reason or 'no reason'}), "
                            f"it should have {'passed' if trial.should_pass else 'failed'}")
        elif trial.says and trial.says.lower() not in reason.lower():
            problems.append(f"{where}: the check failed, but said {reason!r}, not {trial.says!r}")
    return problems


def execute(nb: NotebookNode, cwd: str | Path, *, timeout: int = 300,
            env: Mapping[str, str] | None = None) -> NotebookNode:
    """Execute ``nb`` top to bottom in a fresh ``python3`` kernel started in ``cwd``; return it."""
    from nbclient import NotebookClient

    nb = copy.deepcopy(nb)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    client.execute(env={**kernel_environment(), **(env or {})})
    return nb


def kernel_environment() -> dict[str, str]:
    """This process's environment, as a learner's kernel would have it.

    Without ``PYTEST_CURRENT_TEST``: under pytest, ipykernel stops forwarding what native code writes
    to file descriptors 1 and 2 into cells, so a test would not see what a learner sees.
    """
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def lesson_paths(root: str | Path) -> list[Path]:
    """The lesson notebooks under ``root/notebooks``, in order."""
    return sorted(Path(root, "notebooks").glob("[0-9][0-9]_*.ipynb"))


def all_notebooks(root: str | Path) -> Iterable[Path]:
    """Every committed notebook of the course (lessons and lab sources), checkpoints excluded."""
    for folder in ("notebooks", "source", "release"):
        for path in sorted(Path(root, folder).rglob("*.ipynb")):
            if ".ipynb_checkpoints" not in path.parts:
                yield path
