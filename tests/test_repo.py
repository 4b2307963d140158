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


def test_xdist_groups_keep_a_batch_on_one_worker(tmp_path: Path) -> None:
    """The lab and hostile batches share one costly module fixture per xdist_group; if pytest-xdist stops
    grouping (as it does on pytest 9.2, pytest-xdist issue 1386), each worker would pay for it again."""
    import sys

    (tmp_path / "test_probe.py").write_text(  # grouped as tests/test_labs.py groups a lab's batch
        "import os, pytest\n\n"
        "pytestmark = pytest.mark.parametrize('lab', [pytest.param('lab9', marks=[pytest.mark.xdist_group('lab9')])],\n"
        "                                     scope='module')\n\n"
        "@pytest.fixture(scope='module')\n"
        "def batch(lab):\n"
        "    with open('setups', 'a') as log:\n"
        "        log.write(os.environ['PYTEST_XDIST_WORKER'] + '\\n')\n\n"
        + "".join(f"def test_grouped_{n}(batch):\n    pass\n\n" for n in range(6))
    )
    (tmp_path / "test_other.py").write_text("".join(f"def test_free_{n}():\n    pass\n\n" for n in range(6)))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist",
                           "loadgroup", "-c", "/dev/null", "test_probe.py", "test_other.py"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len((tmp_path / "setups").read_text().split()) == 1, "the group's fixture was set up on several workers"
