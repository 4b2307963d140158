"""DuckDB databases for the course: one file per owner (a domain, a team) in the state directory.

::

    from coursekit import duck
    con = duck.connect("orders")            # <state>/duckdb/orders.duckdb, created if needed
    duck.path("orders")                      # where that file is

DuckDB is embedded: no server, one file per database. ``COURSEKIT_DUCKDB_DIR`` moves the files
(e.g. onto a volume a whole class can read); ``COURSEKIT_DUCKDB_DIR=md:`` opens MotherDuck
databases instead (``md:<name>``, with its token in ``MOTHERDUCK_TOKEN``), the same code against
a hosted DuckDB. Connections never download extensions: what the course uses (Parquet, JSON) is
built into the Python wheel, and anything else fails at once with a clear error instead of
reaching for the network.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from coursekit.config import engine_dir

DIR_ENV = "COURSEKIT_DUCKDB_DIR"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_OFFLINE = {"autoinstall_known_extensions": False, "autoload_known_extensions": True}


class DatabaseBusy(RuntimeError):
    """Another process holds the write lock on a DuckDB file."""


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"database name {name!r}: use lower-case letters, digits and _ (e.g. 'orders')")
    return name


def path(name: str, place: str | None = None) -> Path | str:
    """The file of database ``name`` (a ``md:`` string when ``COURSEKIT_DUCKDB_DIR=md:``).

    ``place`` (e.g. ``"l03"``) keeps a lesson's databases in a folder of their own, so that a kernel
    still open on another lesson never holds the lock on this one's files.
    """
    _check_name(name)
    if place is not None:
        _check_name(place)
    configured = os.environ.get(DIR_ENV, "").strip()
    if configured == "md:":
        return f"md:{place}_{name}" if place else f"md:{name}"
    root = Path(configured).expanduser() if configured else engine_dir("duckdb")
    if place:
        root = root / place
    root.mkdir(parents=True, exist_ok=True)
    return root / f"{name}.duckdb"


def connect(name: str | None = None, *, place: str | None = None, read_only: bool = False, **config: Any) -> Any:
    """Open database ``name`` (``None``: a private in-memory one) and return the connection.

    Timestamps with time zone are shown in UTC, whatever the machine's time zone. Only one
    process at a time may open a DuckDB file for writing; a second one gets
    :class:`DatabaseBusy` naming the holder, instead of DuckDB's lock error.
    """
    import duckdb

    target = ":memory:" if name is None else str(path(name, place))
    try:
        con = duckdb.connect(target, read_only=read_only, config={**_OFFLINE, **config})
    except duckdb.IOException as error:
        if "lock" not in str(error).lower():
            raise
        raise DatabaseBusy(
            f"{target} is open for writing in another process ({error}). Close that connection "
            "(con.close()) or restart the other notebook's kernel, or open this one with read_only=True."
        ) from None
    con.execute("SET TimeZone = 'UTC'")  # the course's timestamps are UTC, whatever the machine's zone
    return con


def drop(name: str, place: str | None = None) -> None:
    """Delete database ``name``'s file and its write-ahead log, if they exist (a fresh start)."""
    target = path(name, place)
    if isinstance(target, Path):
        for file in (target, target.with_name(target.name + ".wal")):
            file.unlink(missing_ok=True)
