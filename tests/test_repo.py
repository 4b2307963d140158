"""The repository as its users expect it: layout, the two commands, pins, nothing generated committed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import ROOT


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def test_layout() -> None:
    for folder in ("notebooks", "source", "release", "autograded", "tests", "src/coursekit"):
        assert (ROOT / folder).is_dir(), folder
    for name in ("environment.yml", "nbgrader_config.py", "README.md", "pyproject.toml", "requirements.lock",
                 "postBuild", "start", ".ci/run", "course"):
        assert (ROOT / name).is_file(), name


def test_lock_pins_every_required_package_exactly() -> None:
    pins = _lock()
    for package in ("jupyterlab", "nbgrader", "pandas", "pyspark", "confluent-kafka", "mlflow", "feast", "pytest-xdist",
                    "grpcio"):
        assert package in pins, f"{package} is not in requirements.lock"


def test_environment_yml_names_the_locked_versions() -> None:
    text = (ROOT / "environment.yml").read_text()
    pins = _lock()
    pip_pins = re.findall(r"^\s+- ([A-Za-z0-9_.\-]+)(?:\[[a-z,]+\])?==(\S+)\s*$", text, re.MULTILINE)
    assert len(pip_pins) >= 8
    for name, version in pip_pins:
        key = re.sub(r"[-_.]+", "-", name).lower()
        assert pins.get(key) == version, f"environment.yml pins {name}=={version}, the lock has {pins.get(key)}"
    assert "-c requirements.lock" in text, "the rest of the environment is constrained by the lock"
    assert re.search(r"^\s+- python=3\.11", text, re.MULTILINE)
    assert re.search(r"^\s+- openjdk=17", text, re.MULTILINE)


def test_binder_scripts() -> None:
    post = (ROOT / "postBuild").read_text()
    assert post.startswith("#!/bin/bash") and "set -e" in post and "coursekit fetch-jars" in post
    start = (ROOT / "start").read_text()
    assert start.rstrip().endswith('exec "$@"')


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert "./course lab" in first_block and "./course test" in first_block
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == "exec ./course test"


def test_nothing_generated_is_committed() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    bad = [p for p in tracked if Path(p).name in {"gradebook.db", ".nbgrader.log", "derby.log"}
           or ".ipynb_checkpoints" in p or "__pycache__" in p or (p.startswith(("autograded/", "submitted/"))
           and not p.endswith(".gitkeep"))]
    assert not bad, f"generated files are committed: {bad}"
