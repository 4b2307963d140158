"""Feast for the course: a local feature repository (SQLite online, Parquet offline read by DuckDB), or yours.

::

    from coursekit import featurestore
    store = featurestore.feature_store()      # FeatureStore over <state>/feast/repo

The default repository uses Feast's ``local`` provider: the registry is one protobuf file, the online
store a SQLite file, and the offline store reads Parquet files with Feast's DuckDB engine (its default,
Dask, drops entity rows from point-in-time joins in Feast 0.67: lesson 19), all under ``<state>/feast``.
``FEAST_REPO_PATH`` points at another repository directory (with its own
``feature_store.yaml``), for example one configured for a cloud provider.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from coursekit import naming
from coursekit.config import engine_dir

if TYPE_CHECKING:
    from feast import FeatureStore

REPO_ENV = "FEAST_REPO_PATH"
PROJECT = "brightcart"

_YAML = """\
project: {project}
provider: local
registry:
  registry_type: file
  path: {root}/registry.db
online_store:
  type: sqlite
  path: {root}/online_store.db
offline_store:
  type: duckdb
entity_key_serialization_version: 3
"""


def repo_path() -> Path:
    """The feature repository in use: ``$FEAST_REPO_PATH``, else the course's local one."""
    configured = os.environ.get(REPO_ENV, "").strip()
    if configured:
        path = Path(configured).expanduser()
        if not (path / "feature_store.yaml").is_file():
            raise FileNotFoundError(f"{REPO_ENV}={configured} has no feature_store.yaml; point it at a Feast repo")
        return path
    root = engine_dir("feast")
    repo = root / "repo"
    repo.mkdir(exist_ok=True)
    yaml = repo / "feature_store.yaml"
    text = _YAML.format(project=PROJECT, root=root)
    if not yaml.is_file() or yaml.read_text() != text:
        yaml.write_text(text)
    return repo


def data_dir() -> Path:
    """Where the local repository's Parquet sources live."""
    path = engine_dir("feast") / "data"
    path.mkdir(exist_ok=True)
    return path


def shared() -> bool:
    """True when notebooks use a feature repository others may share (``FEAST_REPO_PATH``)."""
    return bool(os.environ.get(REPO_ENV, "").strip())


def feature_store(path: str | Path | None = None) -> FeatureStore:
    """A ``FeatureStore`` over ``path`` (a repo directory), or over :func:`repo_path`.

    On a shared repository (``FEAST_REPO_PATH``) its project becomes ``<learner>.<project>``
    (:mod:`coursekit.naming`): each learner's feature views and online rows are their own.
    """
    from feast import FeatureStore
    from feast.repo_config import load_repo_config

    repo = Path(path if path is not None else repo_path())
    config = load_repo_config(repo, repo / "feature_store.yaml")
    config.project = re.sub(r"[^0-9A-Za-z_]", "_", naming.namespaced(config.project, shared()))  # Feast: \w only
    return FeatureStore(repo_path=str(repo), config=config)


def reset() -> None:
    """Delete the local registry, online store and data (a clean repository next time)."""
    import shutil

    shutil.rmtree(engine_dir("feast"), ignore_errors=True)
