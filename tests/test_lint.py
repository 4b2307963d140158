"""The package, tests and notebooks pass ruff (settings in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_ruff() -> None:
    folders = ["src", "tests", "notebooks", "authoring", "source", "graders"]
    done = subprocess.run([sys.executable, "-m", "ruff", "check", *folders],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
