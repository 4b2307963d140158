"""The learner's distribution of the course: what learners open, on Binder, JupyterHub or a laptop.

This repository is the **instructor's** course directory: it holds the labs' reference solutions
(``source/``), their hidden tests (``graders/``), the test suite and, once grading ran, the gradebook
and the course secret. Learners get a copy without any of that, built by ``coursekit dist DIR``: the
lessons, the released labs, the course package, the set-up commands and the Binder/JupyterHub
recipe. Push that folder to the repository learners clone and Binder builds from.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

# what a learner needs; everything else of the course directory stays with the instructor
INCLUDED = ("notebooks", "release", "src", "jupyter_config", "CONTENTS.md", "pyproject.toml", "requirements.in",
            "requirements.lock", "environment.yml", "postBuild", "start", "course", ".gitignore")
IGNORED = ("__pycache__", "*.pyc", "*.egg-info", ".ipynb_checkpoints")
# README sections and layout rows that are about authoring, grading or testing the course
_INSTRUCTOR_SECTIONS = ("For authors", "For instructors", "Tests")
_INSTRUCTOR_PATHS = ("source/", "graders/", "autograded/", "tests/", "authoring/", "nbgrader_config.py")


def learner_readme(readme: str) -> str:
    """The course README without what only authors and instructors use."""
    sections = re.split(r"(?m)^(?=## )", readme)
    kept = [s for s in sections if not any(s.startswith(f"## {name}") for name in _INSTRUCTOR_SECTIONS)]
    lines = []
    for line in "".join(kept).splitlines():
        if "./course test" in line or any(line.startswith(f"| `{p}") for p in _INSTRUCTOR_PATHS):
            continue
        lines.append(line)
    note = ("\n> This is the learners' copy of the course, built with `coursekit dist` from the course's "
            "instructor repository. It holds no lab solutions or hidden tests.\n")
    title, _, rest = "\n".join(lines).replace("Both commands work", "`./course lab` works").partition("\n")
    return f"{title}\n{note}{rest}\n"


def build(course: Path, into: Path) -> list[Path]:
    """Write the learner's distribution of ``course`` into the new or empty folder ``into``; return its files."""
    if into.exists() and any(into.iterdir()):
        raise FileExistsError(f"{into} is not empty: give a new folder (the distribution is built from scratch)")
    into.mkdir(parents=True, exist_ok=True)
    for name in INCLUDED:
        path = course / name
        if path.is_dir():
            shutil.copytree(path, into / name, ignore=shutil.ignore_patterns(*IGNORED))
        elif path.is_file():
            shutil.copy2(path, into / name)
    (into / "README.md").write_text(learner_readme((course / "README.md").read_text()))
    return sorted(p for p in into.rglob("*") if p.is_file())
