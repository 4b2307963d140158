"""Where the course keeps its state, and the environment variables that configure it.

Every engine keeps its ports, pids, logs and data under one state directory, never in the repo.
``COURSEKIT_HOME`` moves it; the default is ``$XDG_DATA_HOME/coursekit`` (``~/.local/share``).
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_ENV = "COURSEKIT_HOME"


def state_dir() -> Path:
    """Return the course state directory, creating it if needed."""
    configured = os.environ.get(STATE_ENV)
    if configured:
        root = Path(configured).expanduser()
    else:
        xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        root = Path(xdg) / "coursekit"
    root.mkdir(parents=True, exist_ok=True)
    return root


def engine_dir(engine: str) -> Path:
    """Return (and create) the state sub-directory of one engine, e.g. ``kafka``."""
    path = state_dir() / engine
    path.mkdir(parents=True, exist_ok=True)
    return path


def env_int(name: str, default: int) -> int:
    """Read an integer environment variable, with a clear error when it is not one."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number; unset it or give e.g. {default}") from None


NATIVE_LOGS_ENV = "COURSEKIT_NATIVE_LOGS"
_native_redirected = False


def quiet_native_output() -> Path | None:
    """In a Jupyter kernel, send what native code writes to stderr into ``<state>/logs/native.log``.

    librdkafka's client logs and the JVM's start-up warnings are written by C and Java straight to
    file descriptor 2, which the kernel forwards into whichever cell runs at that moment (and
    nbgrader scores a test cell with stderr output as failed). Python's own ``sys.stderr``,
    tracebacks and warnings are not affected. Set ``COURSEKIT_NATIVE_LOGS=notebook`` to see them in
    the notebook again. Returns the log file, or ``None`` when nothing was redirected.
    """
    global _native_redirected
    import sys

    if _native_redirected:
        return engine_dir("logs") / "native.log"
    if "ipykernel" not in sys.modules or os.environ.get(NATIVE_LOGS_ENV, "").strip().lower() == "notebook":
        return None
    log = engine_dir("logs") / "native.log"
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    _native_redirected = True
    return log
