"""Per-learner names on shared engines: topics, consumer groups, transactional ids, experiments, models.

On a learner's own embedded engines a name is what the notebook says (``l11.orders``). When an engine
is **shared by the class** (``KAFKA_BOOTSTRAP_SERVERS``, ``MLFLOW_TRACKING_URI`` or ``FEAST_REPO_PATH``
points at one deployment), every name the course package creates for a notebook gets the learner's
prefix (``ada.l11.orders``), so two learners running the same lesson at once never see, delete or
fence each other's data. The learner is ``$COURSEKIT_LEARNER``, else ``$JUPYTERHUB_USER`` (set by
JupyterHub in every learner's server), else the account's user name. ``COURSEKIT_NAMESPACE=always``
prefixes on private engines too, ``never`` nowhere (one learner alone on a shared cluster).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re

LEARNER_ENV = "COURSEKIT_LEARNER"
MODE_ENV = "COURSEKIT_NAMESPACE"
_ALLOWED = re.compile(r"[^a-z0-9-]+")


def learner() -> str:
    """The learner's name as it goes into names: lower case letters, digits and ``-``.

    A name that had to change (``Ada.Lovelace@uni.edu``) gets a short hash of the original, so two
    learners whose names differ only in the dropped characters still get different prefixes.
    """
    raw = (os.environ.get(LEARNER_ENV) or os.environ.get("JUPYTERHUB_USER") or _account()).strip()
    safe = _ALLOWED.sub("-", raw.lower()).strip("-")[:40] or "learner"
    if safe != raw:
        safe = f"{safe}-{hashlib.sha256(raw.encode()).hexdigest()[:6]}"
    return safe


def _account() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid{os.getuid()}"


def prefix(shared: bool) -> str:
    """``"<learner>."`` when names must be namespaced (the engine is shared, or always), else ``""``."""
    mode = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "always", "never"):
        raise ValueError(f"{MODE_ENV}={mode!r}: use auto (the default), always or never")
    on = mode == "always" or (mode == "auto" and shared)
    return f"{learner()}." if on else ""


def namespaced(name: str, shared: bool) -> str:
    """``name`` with the learner's prefix when names are namespaced; a name that has it already is kept."""
    head = prefix(shared)
    return name if name.startswith(head) else f"{head}{name}"
