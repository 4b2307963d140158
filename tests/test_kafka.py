"""The embedded Kafka broker: start, reuse, restart, topics, and the CLI around it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from coursekit import kafka

pytestmark = pytest.mark.engines


def test_broker_starts_once_and_is_reused(isolated_home: Path) -> None:
    first = kafka.start()
    again = kafka.start()
    assert again == first, "a second start while one runs must reuse it, not start another"
    assert kafka.bootstrap_servers() == first.bootstrap
    assert (isolated_home / "kafka" / "data" / "meta.properties").is_file(), "KRaft storage is formatted"


def test_a_cluster_id_that_looks_like_an_option(isolated_home: Path) -> None:
    """One random cluster id in 64 begins with "-"; the storage tool must not take it for an option."""
    (isolated_home / "kafka").mkdir(parents=True, exist_ok=True)
    (isolated_home / "kafka" / "cluster.id").write_text("-" + "A" * 21)
    kafka.start()
    assert (isolated_home / "kafka" / "data" / "meta.properties").is_file(), "KRaft storage is formatted"
    assert kafka.stop() is True


def test_concurrent_starts_make_one_broker(isolated_home: Path) -> None:
    code = "from coursekit import kafka; print(kafka.start().pid)"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    pids = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert len(pids) == 1, f"two kernels starting at once got different brokers: {pids}"


def test_a_port_won_by_another_learners_broker_is_not_taken_for_ours(
        isolated_home: Path, bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two learners (two state directories, two locks) may both find the same port free; only one JVM
    binds it. The other must notice that the broker answering there has another cluster id and start
    again elsewhere, not share the winner's topics (this once emptied a classmate's topic in CI)."""
    theirs = int(bootstrap.rsplit(":", 1)[1])  # this worker's broker plays the classmate who won
    monkeypatch.delenv(kafka.PORT_ENV)
    (isolated_home / "kafka").mkdir(parents=True, exist_ok=True)
    (isolated_home / "kafka" / "port").write_text(str(theirs))
    real_port_free = kafka.port_free
    monkeypatch.setattr(kafka, "port_free", lambda p: p in (theirs, theirs + 1) or real_port_free(p))
    ours = kafka.start()
    assert ours.port != theirs, "the broker answering on the raced port is someone else's"
    assert kafka._cluster_of(ours.bootstrap, 5) == (isolated_home / "kafka" / "cluster.id").read_text().strip()
    assert (isolated_home / "kafka" / "port").read_text() == str(ours.port), "the new port is recorded"
    assert kafka._cluster_of(bootstrap, 5) != kafka._cluster_of(ours.bootstrap, 5)
    assert kafka.stop() is True


def test_dead_broker_is_restarted(isolated_home: Path) -> None:
    first = kafka.start()
    os.kill(first.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while kafka.status() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kafka.status() is None, "a killed broker is not reported as running"
    # the system releases a killed process's listening sockets a moment after it is gone: wait for its ports
    while not (kafka.port_free(first.port) and kafka.port_free(first.controller_port)) and time.monotonic() < deadline:
        time.sleep(0.1)
    second = kafka.start()
    assert second.pid != first.pid
    assert kafka.stop() is True
    assert kafka.stop() is False, "stopping twice is harmless"


def test_topics_and_records_round_trip(bootstrap: str) -> None:
    topic = kafka.fresh_topic("tests.round-trip", partitions=3)
    assert kafka.ensure_topic(topic, partitions=3) == topic, "ensure_topic is idempotent"
    with pytest.raises(ValueError, match="exists with 3 partitions"):
        kafka.ensure_topic(topic, partitions=2)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(30):
        producer.produce(topic, key=f"k{i % 5}", value=f'{{"n": {i}}}')
    producer.flush()
    records = kafka.read_all(topic)
    assert sorted(r.value["n"] for r in records) == list(range(30))
    by_key: dict[str, set[int]] = {}
    for r in records:
        by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_key.values()), "one key, one partition"
    kafka.ensure_topic(topic, partitions=3, recreate=True)
    assert kafka.read_all(topic) == [], "recreate starts the topic empty"
    kafka.delete_topics([topic])


def test_cli_start_prints_bootstrap_last(isolated_home: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, "-m", "coursekit.cli", "start", "kafka"], capture_output=True,
                          text=True, timeout=120, env=env, check=True)
    assert done.stdout.strip().splitlines()[-1] == f"127.0.0.1:{os.environ[kafka.PORT_ENV]}"
    status = subprocess.run([sys.executable, "-m", "coursekit.cli", "status"], capture_output=True, text=True,
                            timeout=60, env=env, check=True)
    assert "kafka: running" in status.stdout
    stop = subprocess.run([sys.executable, "-m", "coursekit.cli", "stop", "kafka"], capture_output=True, text=True,
                          timeout=60, env=env, check=True)
    assert stop.stdout.strip() == "stopped"


def test_doctor_reports_a_fix_for_each_failure(isolated_home: Path, tmp_path: Path) -> None:
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-jdk"), "COURSEKIT_JARS": str(tmp_path / "no-jars")}
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    done = subprocess.run([sys.executable, "-m", "coursekit.cli", "doctor"], capture_output=True, text=True,
                          timeout=60, env=env, check=False)
    assert done.returncode == 1
    java_line = next(line for line in done.stdout.splitlines() if line.startswith("java"))
    assert "FAIL" in java_line and "->" in java_line
    assert "coursekit fetch-jars" in done.stdout


def test_doctor_passes_on_a_good_machine(isolated_home: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "coursekit.cli", "doctor"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout
    assert done.stdout.strip().endswith("all checks passed")


def test_a_learner_s_broker_finds_a_free_port_and_keeps_it(isolated_home: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A second learner on the same machine (19092 taken) gets a broker of their own, with no setting."""
    import socket

    monkeypatch.delenv(kafka.PORT_ENV)
    with socket.socket() as squatter:
        try:
            squatter.bind(("127.0.0.1", kafka.DEFAULT_PORT))
            squatter.listen()
        except OSError:
            pass  # something already holds 19092, which is the case under test anyway
        first = kafka.start()
        assert first.port != kafka.DEFAULT_PORT, "19092 was taken: another pair must be chosen"
        kafka.stop()
        again = kafka.start()
    assert again.port == first.port, "the learner keeps the port they had"
    assert (isolated_home / "kafka" / "port").read_text() == str(first.port)

