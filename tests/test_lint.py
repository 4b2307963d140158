"""The package, tests and notebooks pass ruff (settings in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_ruff() -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "src", "tests", "notebooks", "authoring", "source"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
