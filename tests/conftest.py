"""Shared fixtures: the repo root, an isolated course state, and the shared embedded broker."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from coursekit import kafka
from coursekit.config import state_dir

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_COURSE = Path(__file__).resolve().parent / "fixtures" / "course"

# the fixture lab's notebooks are exercised by the nbgrader tests, not collected by nbval
collect_ignore_glob = ["fixtures/*"]


def free_port_pair() -> int:
    """A port p such that p and p + 1 are both free on 127.0.0.1.

    Drawn below Linux's ephemeral range (32768+), so that no client connection grabs it between
    this check and the broker's bind.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        if kafka.port_free(port) and kafka.port_free(port + 1):
            return port
    raise RuntimeError("no two consecutive free ports in 20000-32000")


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private COURSEKIT_HOME (sharing the fetched jars) with its own Kafka port pair."""
    jars = state_dir() / "jars"
    home = tmp_path / "home"
    home.mkdir()
    if jars.is_dir():
        (home / "jars").symlink_to(jars)
    monkeypatch.setenv("COURSEKIT_HOME", str(home))
    monkeypatch.setenv(kafka.PORT_ENV, str(free_port_pair()))
    monkeypatch.delenv(kafka.BOOTSTRAP_ENV, raising=False)
    yield home
    kafka.stop()


# Was the user's shared broker already up when the run began? If not, the run stops the one it
# started (by the tests or by the notebooks nbval executes) when it ends.
_BROKER_WAS_RUNNING = bool(os.environ.get(kafka.BOOTSTRAP_ENV)) or kafka.status() is not None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _BROKER_WAS_RUNNING:
        kafka.stop()


@pytest.fixture(scope="session")
def bootstrap() -> str:
    """The shared broker's bootstrap servers (the embedded broker is started if needed)."""
    return kafka.bootstrap_servers()
