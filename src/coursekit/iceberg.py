"""Apache Iceberg tables for the course (through ``pyiceberg``, no Spark): the catalog that tracks them.

::

    from coursekit import iceberg
    catalog = iceberg.catalog()                       # a SQLite catalog in <state>/iceberg
    name = iceberg.table_name("orders", place="l22")  # "l22.orders" ("ada-l22.orders" on a shared catalog)
    table = catalog.create_table(name, schema=arrow_schema)

An Iceberg table's current state is a pointer, held by a **catalog**, to its latest ``metadata.json``;
a commit swaps that pointer atomically (compare-and-swap), which is what makes concurrent writers safe.

======================  ===============================================  ==========================================
what                    embedded default                                 switch to your own
======================  ===============================================  ==========================================
catalog                 SQLite file ``<state>/iceberg/catalog.db``       ``COURSEKIT_ICEBERG_URI=http://host:8181``
                        (pyiceberg's ``SqlCatalog``)                     (an Iceberg REST catalog: Polaris, Lakekeeper,
                                                                         Gravitino, Unity Catalog, a cloud's)
data and metadata       ``<state>/iceberg/warehouse``                    where the REST catalog says (its warehouse)
names                   as written (``l22.orders``)                      the learner's prefix on the namespace
                                                                         (:mod:`coursekit.naming`)
======================  ===============================================  ==========================================

A REST catalog often needs credentials or a warehouse name: pyiceberg reads them from its own
``PYICEBERG_CATALOG__COURSE__*`` environment variables (e.g. ``..._TOKEN``, ``..._WAREHOUSE``), which
:func:`catalog` leaves to it. There is no process to start or stop: the SQLite catalog is a file.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import TYPE_CHECKING

from coursekit import naming
from coursekit.config import engine_dir
from coursekit.errors import EngineUnreachable

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

URI_ENV = "COURSEKIT_ICEBERG_URI"
CATALOG_NAME = "course"
REACH_TIMEOUT = 5.0
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def remote_uri() -> str | None:
    """``$COURSEKIT_ICEBERG_URI`` (an ``http(s)://`` REST catalog), or ``None`` for the embedded catalog."""
    uri = os.environ.get(URI_ENV, "").strip().rstrip("/")
    if not uri:
        return None
    if not uri.startswith(("http://", "https://")):
        raise ValueError(f"{URI_ENV}={uri!r}: give the REST catalog's http(s):// address, e.g. http://host:8181")
    return uri


def shared() -> bool:
    """True when the catalog is a deployment others may share (``COURSEKIT_ICEBERG_URI`` is set)."""
    return remote_uri() is not None


def table_name(name: str, place: str) -> str:
    """``<namespace>.<name>`` for table ``name`` of lesson ``place``: the namespace gets the learner's prefix
    on a shared catalog (``ada-l22.orders``), so that learners never overwrite each other's tables."""
    for part in (name, place):
        if not _NAME.match(part):
            raise ValueError(f"{part!r}: use lower-case letters, digits and _ (e.g. 'orders')")
    head = naming.prefix(shared())
    return f"{head[:-1]}-{place}.{name}" if head else f"{place}.{name}"


def _ping(uri: str) -> None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri}/v1/config", timeout=REACH_TIMEOUT):  # noqa: S310 - http(s) only
            return
    except urllib.error.HTTPError:
        return  # it answered (401/403 means it wants credentials: pyiceberg sends them)
    except OSError as exc:
        raise EngineUnreachable(
            f"no Iceberg REST catalog answered at {URI_ENV}={uri} ({exc})",
            f"check that the catalog is up and reachable from here, or unset {URI_ENV} to use the local "
            "SQLite catalog") from exc


def catalog() -> Catalog:
    """The course's Iceberg catalog: the REST catalog of ``$COURSEKIT_ICEBERG_URI``, else a SQLite one.

    Cheap to call again (the SQLite catalog is a file; each call opens a new client on it).
    """
    uri = remote_uri()
    if uri is not None:
        from pyiceberg.catalog.rest import RestCatalog

        _ping(uri)
        return RestCatalog(CATALOG_NAME, uri=uri)
    from pyiceberg.catalog.sql import SqlCatalog

    home = engine_dir("iceberg")
    warehouse = home / "warehouse"
    warehouse.mkdir(parents=True, exist_ok=True)
    return SqlCatalog(CATALOG_NAME, uri=f"sqlite:///{home / 'catalog.db'}", warehouse=warehouse.as_uri())


def fresh_table(cat: Catalog, name: str, schema: object, **kwargs: object) -> object:
    """Create table ``name`` (``namespace.table``) in ``cat``, dropping a leftover of an earlier run first
    (its files too, on the local catalog). Returns the new table."""
    from pyiceberg.exceptions import NoSuchTableError

    namespace, _, _ = name.rpartition(".")
    cat.create_namespace_if_not_exists(namespace)
    try:
        old = cat.load_table(name)
    except NoSuchTableError:
        old = None
    if old is not None:
        if shared():
            cat.purge_table(name)  # the REST catalog deletes the files it manages
        else:
            cat.drop_table(name)
            location = old.location().removeprefix("file://")
            if location.startswith(str(engine_dir("iceberg"))):
                shutil.rmtree(location, ignore_errors=True)
    return cat.create_table(name, schema=schema, **kwargs)


def check() -> tuple[bool, str, str]:
    """For ``coursekit doctor``: ``(ok, what it found, the fix)`` about the Iceberg catalog."""
    try:
        uri = remote_uri()
    except ValueError as exc:
        return False, str(exc), f"set {URI_ENV} to http://host:port, or unset it"
    try:
        import pyiceberg
    except ImportError:
        return False, "pyiceberg is not installed", "run `./course setup` to reinstall the locked packages"
    if uri is not None:
        try:
            _ping(uri)
        except EngineUnreachable as exc:
            return False, exc.problem, exc.fix
        return True, f"Iceberg REST catalog at {uri} answers (pyiceberg {pyiceberg.__version__})", ""
    try:
        names = catalog().list_namespaces()
    except Exception as exc:  # noqa: BLE001 - any failure of the local catalog is reported, not raised
        return False, f"the SQLite Iceberg catalog in {engine_dir('iceberg')} fails: {exc}", (
            f"delete {engine_dir('iceberg')} to start it afresh (its tables go with it)")
    return True, f"SQLite Iceberg catalog in {engine_dir('iceberg')}, {len(names)} namespace(s), " \
                 f"pyiceberg {pyiceberg.__version__}", ""
