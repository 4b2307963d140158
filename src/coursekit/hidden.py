"""Hidden tests that are judged outside the student's kernel.

A submission's code runs in the same Python process as the test cells that follow it, so it can
replace any function a test calls, return an object whose ``==`` always says yes, swallow the
exceptions of later cells (``set_custom_exc``) or print what a passing test would print. Nothing a
test checks *inside* that process can be trusted. So the hidden tests of a lab are split in two:

* the **kernel** only calls the student's code on hidden inputs and reports what it returned, as
  JSON (:func:`report`);
* the **grader's own process** prepares those inputs (topics, data, from seeds the kernel is never
  shown), then checks the reported value and whatever the call left behind (records in Kafka,
  committed offsets, a database file) with its own clients, against a truth it computed itself.

A lab's hidden tests live in ``graders/<lab>.py`` beside ``source/``: never released, hidden from
the grader kernel, and not copied by nbgrader. For each autograded test cell ``part-x-tests`` the
module has a function ``part_x_tests(rng)`` that prepares the inputs and returns a :class:`Hidden`.
In the source notebook, the test cell's hidden block is ``hidden_tests("part-x-tests", globals())``,
which runs the same prepare-call-verify steps in one kernel (for authors, ``nbgrader validate`` and CI);
at autograding :class:`coursekit.grading.ExecuteHiddenTests` runs them split: prepare and verify in the
grader, the call in the sandboxed kernel.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import os
import random
import secrets
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

MIME = "application/vnd.coursekit.hidden-result+json"
GRADERS = "graders"


@dataclass
class Hidden:
    """One test cell's hidden test: what the kernel evaluates, and how the grader checks the result.

    ``call`` is a Python expression evaluated in the notebook's namespace (it calls the student's
    functions), after the statements ``setup`` (imports, say). ``verify`` receives its value as plain
    JSON data (dicts with their keys as tuples where they were tuples, lists for tuples and lists) and
    raises ``AssertionError`` with a reason when it is wrong. It may instead return a :class:`Partial`:
    the cell then earns that fraction of its points. ``cleanup`` runs afterwards either way.
    """

    call: str
    verify: Callable[[Any], None]
    setup: str = ""
    cleanup: Callable[[], None] = field(default=lambda: None)


@dataclass(frozen=True)
class Partial:
    """What a hidden test's ``verify`` returns for partial credit: ``fraction`` (0 to 1) of the cell's
    points, and why (shown to the instructor and, in feedback, to the student)."""

    fraction: float
    why: str


def records(frame: Any) -> dict[str, Any]:
    """A data frame as plain JSON data, for a hidden call's value: ``{"columns": [...], "rows": [[...]]}``.

    Dates and times become ISO 8601 text, missing values (NaN, NaT, None) None, numpy scalars Python
    numbers; anything that is not a pandas ``DataFrame`` is returned as it is (the grader says so).
    """
    import math

    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        return frame
    def plain(value: Any) -> Any:
        if value is None or value is pd.NaT or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            return None
        if hasattr(value, "isoformat"):
            return value.isoformat()
        if type(value).__module__ == "numpy" and hasattr(value, "item"):
            return plain(value.item())
        return value
    return {"columns": [str(c) for c in frame.columns],
            "rows": [[plain(v) for v in row] for row in frame.astype(object).itertuples(index=False, name=None)]}


def encode(value: Any) -> Any:
    """``value`` as JSON data; a mapping becomes ``{"__pairs__": [[key, value], ...]}``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {"__pairs__": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return encode(value.item())
    raise TypeError(f"the hidden tests check plain values (dict, list, tuple, str, int, float, bool, None); "
                    f"your code returned a {type(value).__name__}")


def _key(value: Any) -> Any:
    return tuple(_key(v) for v in value) if isinstance(value, list) else value


def decode(data: Any) -> Any:
    """Plain data from :func:`encode`'s JSON, re-parsed so that nothing of the kernel's objects survives."""
    def hook(obj: dict[str, Any]) -> Any:
        if set(obj) == {"__pairs__"} and isinstance(obj["__pairs__"], list):
            pairs = [pair for pair in obj["__pairs__"] if isinstance(pair, list) and len(pair) == 2]
            return {_key(key): value for key, value in pairs}
        return obj

    return json.loads(json.dumps(data), object_hook=hook)


def report(token: str, value: Any) -> None:
    """Kernel side: publish the value of a hidden call for the grader (one display output)."""
    from IPython.display import display

    display({MIME: {"token": token, "value": encode(value)}}, raw=True)


def seed(key: bytes, *parts: str) -> int:
    """A reproducible seed for one student's hidden inputs, keyed by the course secret.

    A regrade sees the same data; without the key, holding ``graders/`` is not enough to rebuild
    anyone's hidden inputs and their truth.
    """
    return int.from_bytes(hmac.new(key, "/".join(parts).encode(), hashlib.sha256).digest()[:8], "big")


SECRET_ENV = "COURSEKIT_GRADER_SECRET"  # noqa: S105 - the variable's name, not a secret
SECRET_FILE = ".grading-secret"  # noqa: S105 - the file's name


def course_secret(course_root: Path) -> bytes:
    """The key of the hidden inputs: ``$COURSEKIT_GRADER_SECRET``, else ``<course>/.grading-secret``.

    The file is created once, where grading runs (random, readable by its owner only, ignored by git
    and never copied by nbgrader), and kept: regrades with it reproduce every student's inputs.
    """
    configured = os.environ.get(SECRET_ENV, "").strip()
    if configured:
        return _checked(configured.encode(), SECRET_ENV)
    path = course_root / SECRET_FILE
    if not path.exists():
        # written whole under another name, then linked into place: two graders starting at once agree
        fd, tmp = tempfile.mkstemp(dir=course_root, prefix=".grading-secret-")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return _checked(path.read_bytes().strip(), str(path))


def _checked(key: bytes, where: str) -> bytes:
    if len(key) < 32:
        raise ValueError(f"the course secret in {where} is too short ({len(key)} characters): use 32 or more "
                         f"random characters (delete {SECRET_FILE} to have a new one made; regrades then give "
                         "every student new hidden inputs)")
    return key


_workspace: Path | None = None


@contextmanager
def workspace(folder: Path | None) -> Iterator[None]:
    """While grading a notebook: the folder its kernel can write, where :func:`scratch` makes folders."""
    global _workspace
    before, _workspace = _workspace, folder
    try:
        yield
    finally:
        _workspace = before


def scratch(prefix: str) -> Path:
    """A fresh folder that both the grader and the kernel being graded can use (files the call leaves).

    While grading, it is inside the submission's working copy, the only folder of the machine the
    sandboxed kernel can write; otherwise a temporary folder.
    """
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_workspace))


def load(course_root: Path, lab: str) -> ModuleType | None:
    """The module ``graders/<lab>.py`` of a course directory, or None when the lab has none."""
    path = course_root / GRADERS / f"{lab}.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"coursekit_graders_{lab}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checker(module: ModuleType | None, grade_id: str) -> Callable[[random.Random], Hidden] | None:
    """The function of a graders module that prepares the hidden test of cell ``grade_id``."""
    return getattr(module, grade_id.replace("-", "_"), None) if module is not None else None


def _course_of(cwd: Path) -> tuple[Path, str]:
    """The course directory and lab of a notebook folder (``source/<lab>``, ``autograded/<student>/<lab>``)."""
    for folder in cwd.parents:
        if (folder / GRADERS).is_dir():
            return folder, cwd.name
    raise FileNotFoundError(f"no {GRADERS}/ folder above {cwd}: the hidden tests are not readable here")


def hidden_tests(grade_id: str, namespace: dict[str, Any]) -> None:
    """Run a test cell's hidden test in this kernel: prepare, call, verify (the source notebook's way)."""
    root, lab = _course_of(Path.cwd())
    make = checker(load(root, lab), grade_id)
    if make is None:
        raise LookupError(f"{GRADERS}/{lab}.py has no function {grade_id.replace('-', '_')}")
    test = make(random.Random(seed(b"source", lab, grade_id)))  # noqa: S311 - test data
    try:
        exec(test.setup, namespace)  # noqa: S102 - the lab author's own code
        verdict = test.verify(decode(encode(eval(test.call, namespace))))  # noqa: S307
    finally:
        test.cleanup()
    if isinstance(verdict, Partial) and verdict.fraction < 1:  # the grader gives partial credit; here it is a fail
        raise AssertionError(f"partial credit ({verdict.fraction:.0%} of the points): {verdict.why}")
