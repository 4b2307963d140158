"""Find the Java runtime the JVM engines (Kafka broker, Spark driver) run on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from coursekit.errors import JavaError

MIN_JAVA = 17
_INSTALL_HINT = (
    "install a Java 17+ runtime (Debian/Ubuntu: `sudo apt-get install openjdk-17-jre-headless`; "
    "conda: `conda install -c conda-forge openjdk=17`) or point JAVA_HOME at one"
)


def find_java() -> Path:
    """Return the ``java`` executable: ``$JAVA_HOME/bin/java`` if set, else the one on ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
        raise JavaError(f"JAVA_HOME={home} has no bin/java", f"fix or unset JAVA_HOME, or {_INSTALL_HINT}")
    found = shutil.which("java")
    if found is None:
        raise JavaError("Java was not found (no JAVA_HOME, no `java` on PATH)", _INSTALL_HINT)
    return Path(found)


def parse_version(text: str) -> int:
    """Return the major version from ``java -version`` output (``1.8.0_392`` is 8, ``17.0.15`` is 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if match is None:
        raise JavaError(f"could not read the Java version from: {text.strip()[:200]!r}", _INSTALL_HINT)
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    return major


def java_version(java: Path) -> int:
    """Run ``java -version`` and return its major version."""
    try:
        done = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise JavaError(f"{java} could not be run: {exc}", _INSTALL_HINT) from exc
    return parse_version(done.stderr + done.stdout)


def require_java(minimum: int = MIN_JAVA) -> Path:
    """Return a ``java`` of at least version ``minimum``, or raise :class:`JavaError` saying what to do."""
    java = find_java()
    major = java_version(java)
    if major < minimum:
        raise JavaError(f"{java} is Java {major}; Kafka 4 and Spark 4 need Java {minimum} or newer", _INSTALL_HINT)
    return java


def log4j2_to_file(log: Path, *, level: str = "warn", loggers: dict[str, str] | None = None) -> str:
    """A log4j2 configuration (properties format) that writes the JVM's logs to ``log`` only.

    The JVM engines use it so that their logs land in the state directory, never in a notebook.
    """
    lines = [
        "status = error",
        "appender.file.type = File",
        "appender.file.name = file",
        f"appender.file.fileName = {log}",
        "appender.file.layout.type = PatternLayout",
        "appender.file.layout.pattern = [%d] %p %m (%c)%n",
        f"rootLogger.level = {level}",
        "rootLogger.appenderRef.file.ref = file",
    ]
    for n, (name, logger_level) in enumerate((loggers or {}).items()):
        lines += [f"logger.l{n}.name = {name}", f"logger.l{n}.level = {logger_level}"]
    return "\n".join(lines) + "\n"
