"""Bad set-ups fail fast with a message that says what is wrong and what to do."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from coursekit import jars, java, kafka
from coursekit.errors import CourseError, EngineUnreachable, JarsMissing, JavaError, PortInUse


@pytest.mark.parametrize(("text", "major"), [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('java version "1.8.0_392"', 8),
    ('openjdk version "21" 2023-09-19', 21),
])
def test_java_version_is_parsed(text: str, major: int) -> None:
    assert java.parse_version(text) == major


def test_missing_java_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaError) as err:
        java.require_java()
    assert "not found" in err.value.problem
    assert "openjdk-17" in err.value.fix


def fake_java(tmp_path: Path, version_line: str) -> Path:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    exe = home / "bin" / "java"
    exe.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return home


def test_old_java_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path, 'openjdk version "11.0.2" 2019-01-15')))
    with pytest.raises(JavaError, match="Java 11; Kafka 4 and Spark 4 need Java 17"):
        java.require_java()


def test_bad_java_home_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(JavaError, match="has no bin/java"):
        java.find_java()


def test_jars_not_fetched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(jars.JARS_ENV, str(tmp_path))
    with pytest.raises(JarsMissing) as err:
        jars.require("kafka-broker")
    assert "coursekit fetch-jars" in err.value.fix
    with pytest.raises(ValueError, match="unknown jar bundle"):
        jars.require("kafka-streams")


def test_no_maven_and_no_jars(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(jars.JARS_ENV, str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JarsMissing, match="Maven"):
        jars.fetch("kafka-broker")


def test_unreachable_broker_fails_within_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import free_port_pair

    monkeypatch.setenv(kafka.BOOTSTRAP_ENV, f"127.0.0.1:{free_port_pair()}")
    started = time.monotonic()
    with pytest.raises(EngineUnreachable) as err:
        kafka.bootstrap_servers(timeout=2)
    assert time.monotonic() - started < 10, "an unreachable broker must not hang the cell"
    assert "unset KAFKA_BOOTSTRAP_SERVERS" in err.value.fix


def test_malformed_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kafka.BOOTSTRAP_ENV, "localhost")
    with pytest.raises(EngineUnreachable, match="not of the form host:port"):
        kafka.bootstrap_servers(timeout=1)


def test_bad_port_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from coursekit.config import env_int

    monkeypatch.setenv(kafka.PORT_ENV, "kafka")
    with pytest.raises(ValueError, match="not a whole number"):
        env_int(kafka.PORT_ENV, kafka.DEFAULT_PORT)


@pytest.mark.engines
def test_busy_port_is_reported(isolated_home: Path) -> None:
    import socket

    port = int(os.environ[kafka.PORT_ENV])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(PortInUse) as err:
            kafka.start()
    assert str(port) in err.value.problem
    assert kafka.PORT_ENV in err.value.fix
    assert kafka.status() is None


def test_errors_carry_problem_and_fix() -> None:
    err = CourseError("the thing is broken", "mend it")
    assert str(err) == "the thing is broken\n  What to do: mend it"
