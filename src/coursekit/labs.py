"""nbgrader labs: generate the student version (``release/``) from ``source/``, and check it.

``coursekit release`` regenerates every lab's ``release/<lab>`` with ``nbgrader
generate_assignment``; the tests regenerate it again and compare, so ``release/`` is never
edited by hand. Generation runs in a scratch copy of the course so that no gradebook is written
into the repo.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from coursekit import notebooks
from coursekit.hidden import GRADERS

CONFIG = "nbgrader_config.py"


def lab_names(course: Path) -> list[str]:
    """The labs of a course directory: folders of ``source/`` that hold a notebook."""
    source = course / "source"
    return sorted(p.name for p in source.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))) if source.is_dir() else []


def scratch_course(course: Path, config: Path, labs: list[str], into: Path) -> Path:
    """Copy ``config``, and the sources and hidden tests of ``labs``, into a fresh course directory ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    shutil.copy(config, into / CONFIG)
    for lab in labs:
        shutil.copytree(course / "source" / lab, into / "source" / lab,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        checks = course / GRADERS / f"{lab}.py"
        if checks.is_file():
            (into / GRADERS).mkdir(exist_ok=True)
            shutil.copy(checks, into / GRADERS / checks.name)
    return into


def nbgrader(course: Path, *args: str, timeout: float = 600, env: Mapping[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    """Run ``nbgrader ARGS`` with ``course`` as the working directory (its config applies); ``env`` adds
    variables to its environment."""
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True,
                          text=True, timeout=timeout, check=False, env={**venv_env(), **(env or {})})


def venv_env() -> dict[str, str]:
    """A kernel's environment with this interpreter's ``bin`` first on ``PATH`` (nbgrader runs ``alembic``)."""
    bindir = str(Path(sys.executable).parent)
    return {**notebooks.kernel_environment(), "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")])}


def generate(course: Path, lab: str, config: Path, into: Path) -> Path:
    """Generate ``lab``'s student version in a scratch course under ``into``; return its folder."""
    scratch = scratch_course(course, config, [lab], into)
    done = nbgrader(scratch, "generate_assignment", lab, "--force")
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment {lab} failed:\n{done.stdout}\n{done.stderr}")
    release = scratch / "release" / lab
    for path in release.rglob("*.ipynb"):
        notebooks.write_clean(path)
    return release


def release_all(course: Path, config: Path) -> list[str]:
    """Regenerate ``course/release/<lab>`` for every lab; return the labs whose release changed."""
    changed = []
    for lab in lab_names(course):
        with tempfile.TemporaryDirectory() as tmp:
            fresh = generate(course, lab, config, Path(tmp))
            target = course / "release" / lab
            if not target.is_dir() or diff(fresh, target):
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(fresh, target)
                changed.append(lab)
    return changed


def diff(a: Path, b: Path) -> list[str]:
    """Relative paths that differ between two folders (missing on one side, or other bytes)."""
    names = {p.relative_to(a) for p in a.rglob("*") if p.is_file()} | {
        p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    return sorted(str(n) for n in names
                  if not (a / n).is_file() or not (b / n).is_file() or (a / n).read_bytes() != (b / n).read_bytes())
