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
_SOLUTION_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


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


def exercises(nb: NotebookNode) -> dict[str, Exercise]:
    """Find the exercises of a lesson by their ``starter:``/``check:``/``solution:`` cell tags."""
    found: dict[str, Exercise] = {}
    for index, cell in enumerate(nb.cells):
        for tag in cell.metadata.get("tags", []):
            role, sep, ident = tag.partition(":")
            if sep and role in ("starter", "check", "solution"):
                setattr(found.setdefault(ident, Exercise(ident)), role, index)
    return found


def solution_code(markdown: str) -> str:
    """The reference solution: the fenced ```python block of a ``solution:`` markdown cell."""
    blocks = _SOLUTION_BLOCK.findall(markdown)
    if len(blocks) != 1:
        raise ValueError(f"a solution cell needs exactly one ```python block, found {len(blocks)}")
    return blocks[0]


def with_solutions(nb: NotebookNode) -> NotebookNode:
    """A copy of ``nb`` with every exercise's starter cell replaced by its reference solution."""
    nb = copy.deepcopy(nb)
    for ex in exercises(nb).values():
        if ex.starter is None or ex.solution is None:
            raise ValueError(f"exercise {ex.id} needs both a starter and a solution cell")
        nb.cells[ex.starter].source = solution_code(nb.cells[ex.solution].source)
    return nb


def execute(nb: NotebookNode, cwd: str | Path, *, timeout: int = 300,
            env: Mapping[str, str] | None = None) -> NotebookNode:
    """Execute ``nb`` top to bottom in a fresh ``python3`` kernel started in ``cwd``; return it."""
    from nbclient import NotebookClient

    nb = copy.deepcopy(nb)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    client.execute(env={**os.environ, **(env or {})})
    return nb


def lesson_paths(root: str | Path) -> list[Path]:
    """The lesson notebooks under ``root/notebooks``, in order."""
    return sorted(Path(root, "notebooks").glob("[0-9][0-9]_*.ipynb"))


def all_notebooks(root: str | Path) -> Iterable[Path]:
    """Every committed notebook of the course (lessons and lab sources), checkpoints excluded."""
    for folder in ("notebooks", "source", "release"):
        for path in sorted(Path(root, folder).rglob("*.ipynb")):
            if ".ipynb_checkpoints" not in path.parts:
                yield path
