"""Versioned tables for the course (Delta Lake through ``deltalake``, no Spark): where they live.

::

    from coursekit import lake
    from deltalake import DeltaTable, write_deltalake
    uri = lake.table_uri("orders", place="l09")           # <state>/lake/l09/orders
    write_deltalake(uri, frame, mode="overwrite", storage_options=lake.storage_options())
    DeltaTable(uri, version=0, storage_options=lake.storage_options()).to_pandas()

``COURSEKIT_LAKE_URI`` (e.g. ``s3://bucket/course``) puts the tables in an object store instead;
``deltalake`` then reads its credentials from the usual ``AWS_*`` (or Azure/GCS) environment
variables, which :func:`storage_options` passes on. The same code runs against both.
"""

from __future__ import annotations

import os
import re
import shutil

from coursekit.config import engine_dir

URI_ENV = "COURSEKIT_LAKE_URI"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def table_uri(name: str, place: str | None = None) -> str:
    """Where table ``name`` lives: a local folder in the state dir, or under ``$COURSEKIT_LAKE_URI``."""
    for part in (name, place):
        if part is not None and not _NAME.match(part):
            raise ValueError(f"{part!r}: use lower-case letters, digits and _ (e.g. 'orders')")
    base = os.environ.get(URI_ENV, "").strip().rstrip("/")
    if base:
        return f"{base}/{place}/{name}" if place else f"{base}/{name}"
    root = engine_dir("lake") / place if place else engine_dir("lake")
    root.mkdir(parents=True, exist_ok=True)
    return str(root / name)


def storage_options() -> dict[str, str]:
    """Options for ``deltalake`` calls: empty for local tables; for an object store, what the
    environment configures (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ALLOW_HTTP`` …)."""
    if not os.environ.get(URI_ENV, "").strip():
        return {}
    keys = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ALLOW_HTTP", "AWS_S3_ALLOW_UNSAFE_RENAME",
            "AZURE_STORAGE_ACCOUNT_NAME", "GOOGLE_SERVICE_ACCOUNT")
    return {k: os.environ[k] for k in keys if os.environ.get(k)}


def drop(name: str, place: str | None = None) -> None:
    """Delete a local table (all its versions): a fresh start. Tables in an object store are left alone."""
    if os.environ.get(URI_ENV, "").strip():
        raise RuntimeError(f"{URI_ENV} is set: delete tables in your object store with its own tools")
    shutil.rmtree(table_uri(name, place), ignore_errors=True)
