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
