"""Shared fixtures and the suite's isolation, parallelism and cost table.

* **Isolation.** Each pytest process (each xdist worker) gets a state directory of its own under the
  system's temp directory and a Kafka port pair of its own, set before any test runs, so every
  broker, kernel and nbgrader run it starts uses them and never the learner's
  ``~/.local/share/coursekit`` or a cluster named by ``KAFKA_BOOTSTRAP_SERVERS``. It stops its
  broker and deletes that directory when it ends. Each test's changes to ``os.environ`` are undone.
* **Any time zone.** The suite runs in ``Pacific/Chatham`` (UTC+13:45 in December), so code that
  assumes the machine is on UTC fails here first (``COURSEKIT_TEST_TZ`` picks another zone).
* **Parallel.** ``-n auto`` (pyproject.toml) runs one worker per core, capped by memory; tests that
  share an expensive module fixture are one ``xdist_group``; the costliest tests are sent first.
* **Cost table.** Every run ends with the worker-seconds spent per lesson, per lab and on the rest,
  and the projection of the whole suite's wall time to the full course (23 lessons, 3 labs).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from coursekit import kafka, labs

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_COURSE = Path(__file__).resolve().parent / "fixtures" / "course"
FULL_COURSE = {"lesson": 23, "lab": 3}
WALL_BUDGET_S = 20 * 60
LESSON_BUDGET_S = 60.0
TEST_TZ = os.environ.get("COURSEKIT_TEST_TZ", "Pacific/Chatham")
# what a learner may have set to point the course (or its engines) at their own deployments or settings:
# never used by the suite; the jars directory and the suite's own time-zone choice are kept
USER_PREFIXES = ("KAFKA_", "MLFLOW_", "FEAST_", "SPARK_", "PYSPARK_", "COURSEKIT_")
KEEP = {"COURSEKIT_JARS", "COURSEKIT_TEST_TZ", "COURSEKIT_VENV"}

# the fixture lab's notebooks are exercised by the nbgrader tests, not collected
collect_ignore_glob = ["fixtures/*", "lab_cases/*"]


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker[2:].isdigit() else 0


def free_port_pair(lo: int = 28000, hi: int = 32000) -> int:
    """A port p such that p and p + 1 are both free on 127.0.0.1, drawn from this worker's share of [lo, hi).

    Below Linux's ephemeral range (32768+), so that no client connection grabs it between this check
    and the broker's bind; each worker draws from its own slice, so two workers never pick the same.
    """
    slice_size = (hi - lo) // 8
    start = lo + (_worker_index() % 8) * slice_size
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(start, start + slice_size - 1)
        if kafka.port_free(port) and kafka.port_free(port + 1):
            return port
    raise RuntimeError(f"no two consecutive free ports in {start}-{start + slice_size}")


def _isolate() -> Path:
    for name in [n for n in os.environ if n.startswith(USER_PREFIXES) and n not in KEEP]:
        del os.environ[name]
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    home = Path(tempfile.mkdtemp(prefix=f"coursekit-tests-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-"))
    os.environ["COURSEKIT_HOME"] = str(home)
    # the kernels, nbgrader and Jupyter the suite starts read and write here, not in the learner's home
    for name, sub in (("IPYTHONDIR", "ipython"), ("JUPYTER_CONFIG_DIR", "jupyter-config"), ("TMPDIR", "tmp"),
                      ("JUPYTER_DATA_DIR", "jupyter-data"), ("JUPYTER_RUNTIME_DIR", "jupyter-runtime")):
        (home / sub).mkdir()
        os.environ[name] = str(home / sub)
    os.environ[kafka.PORT_ENV] = str(free_port_pair(20000, 28000))
    os.environ["TZ"] = TEST_TZ
    time.tzset()
    return home


STATE = _isolate()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    kafka.stop()
    shutil.rmtree(STATE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """Undo whatever a test (or a library it calls, like MLflow) put in ``os.environ``."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)
        time.tzset()


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private COURSEKIT_HOME with its own Kafka port pair; its broker is stopped afterwards."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("COURSEKIT_HOME", str(home))
    monkeypatch.setenv(kafka.PORT_ENV, str(free_port_pair()))
    yield home
    kafka.stop()


@pytest.fixture(scope="session")
def bootstrap() -> str:
    """This worker's broker's bootstrap servers (started if needed)."""
    return kafka.bootstrap_servers()


# ---- parallel runs ---------------------------------------------------------------------------------

def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """One worker per core, at most 4, and at most one per 3 GB of available memory."""
    import psutil

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    by_memory = int(psutil.virtual_memory().available / 2**30 // 3)
    return max(1, min(cores, 4, by_memory))


def _unit(item: pytest.Item) -> str:
    """What a test's time is charged to in the cost table: a lesson, a lab, or the rest."""
    marker = item.get_closest_marker("cost")
    if marker is not None:
        return str(marker.args[0])
    params = getattr(item, "callspec", None)
    params = params.params if params is not None else {}
    if isinstance(params.get("path"), Path) and item.get_closest_marker("notebooks"):
        path = params["path"]
        return f"lesson {path.stem}" if path.parent.name == "notebooks" else f"template {path.stem}"
    if params.get("lab") in _LABS and params.get("course", ROOT) == ROOT and item.get_closest_marker("notebooks"):
        return f"lab {params['lab']}"
    return "rest: package, engines, grading machinery"


_LABS = set(labs.lab_names(ROOT))


def _weight(item: pytest.Item) -> int:
    """Rough cost, to send the longest tests first (so the last one to finish is short)."""
    unit = item.user_properties and dict(item.user_properties).get("cost_unit", "")
    if str(unit).startswith("lab "):
        return 3
    if item.get_closest_marker("xdist_group") or item.get_closest_marker("notebooks"):
        return 2
    return 1 if item.get_closest_marker("engines") else 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.user_properties.append(("cost_unit", _unit(item)))
    items.sort(key=_weight, reverse=True)  # stable: collection order within a weight


# ---- the cost table ----------------------------------------------------------------------------------

_COSTS: dict[str, float] = defaultdict(float)
_STARTED = time.monotonic()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    unit = dict(report.user_properties).get("cost_unit")
    if unit is not None:
        _COSTS[str(unit)] += report.duration


def cost_projection(costs: dict[str, float], wall_s: float) -> list[str]:
    """The cost table's lines, ending with the whole suite's wall time projected to the full course."""
    # a lab's units ("lab X", "lab X: fairness") are one lab: the mean cost of a lab is of whole labs
    whole: dict[str, float] = defaultdict(float)
    for unit, seconds in costs.items():
        whole[unit.split(":")[0]] += seconds
    kinds: dict[str, list[float]] = defaultdict(list)
    for unit, seconds in whole.items():
        kinds[unit.split(" ")[0]].append(seconds)
    total = sum(costs.values()) or 1.0
    lines = ["| cost unit | worker-seconds |", "|---|---:|"]
    lines += [f"| {unit} | {seconds:.0f} |" for unit, seconds in sorted(costs.items())]
    lines.append(f"| **all** ({len(kinds['lesson'])} lessons, {len(kinds['lab'])} labs) | {total:.0f} |")
    if not all(kinds[kind] for kind in FULL_COURSE):
        return [*lines, f"wall time {wall_s:.0f} s; not projected: this run measured no lesson or no lab"]
    mean = {kind: sum(kinds[kind]) / len(kinds[kind]) for kind in FULL_COURSE}
    projected = total + sum((count - len(kinds[kind])) * mean[kind] for kind, count in FULL_COURSE.items())
    lines.append(f"wall time {wall_s:.0f} s for {total:.0f} worker-seconds; projected to "
                 f"{FULL_COURSE['lesson']} lessons and {FULL_COURSE['lab']} labs at today's mean cost each: "
                 f"{projected:.0f} worker-seconds, {wall_s * projected / total:.0f} s wall (budget {WALL_BUDGET_S} s)")
    missing = FULL_COURSE["lesson"] - len(kinds["lesson"])
    if missing > 0:
        worst = projected + missing * (LESSON_BUDGET_S - mean["lesson"])
        lines.append(f"if each lesson still to come took its whole {LESSON_BUDGET_S:.0f} s: "
                     f"{wall_s * worst / total:.0f} s wall")
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    if not _COSTS or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    lines = cost_projection(_COSTS, time.monotonic() - _STARTED)
    terminalreporter.section("cost per lesson and lab")
    for line in lines:
        terminalreporter.write_line(line)
