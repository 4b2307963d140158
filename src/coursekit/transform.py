"""SQL transformations for the course: SQLMesh projects on an embedded DuckDB, or your warehouse.

::

    from coursekit import transform
    ctx = transform.context("pipelines/orders", place="l07")   # a sqlmesh.Context
    ctx.plan("dev", auto_apply=True, no_prompts=True)           # a virtual dev environment
    ctx.fetchdf("SELECT * FROM brightcart__dev.daily_revenue")

By default a project's models, its environments and SQLMesh's own state live in one DuckDB file,
``<state>/duckdb/<place>/warehouse.duckdb`` (:mod:`coursekit.duck`). ``COURSEKIT_SQLMESH_GATEWAY``
names a gateway of the project's own ``config.yaml`` instead (Postgres, Snowflake, Databricks …):
the same models and plans against a real warehouse. SQLMesh's anonymous usage analytics are
switched off before it is imported (they would reach for the network).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from coursekit import duck

GATEWAY_ENV = "COURSEKIT_SQLMESH_GATEWAY"
ANALYTICS_ENV = "SQLMESH__DISABLE_ANONYMIZED_ANALYTICS"


def _quiet() -> None:
    os.environ.setdefault(ANALYTICS_ENV, "1")


def database(place: str | None = None) -> Path | str:
    """The DuckDB file an embedded project uses (see :func:`context`)."""
    return duck.path("warehouse", place)


def config(place: str | None = None, dialect: str = "duckdb") -> Any:
    """The embedded configuration: one DuckDB gateway named ``local``, models in ``dialect``."""
    _quiet()
    from sqlmesh.core.config import Config, DuckDBConnectionConfig, GatewayConfig, ModelDefaultsConfig

    return Config(gateways={"local": GatewayConfig(connection=DuckDBConnectionConfig(database=str(database(place))))},
                  default_gateway="local", model_defaults=ModelDefaultsConfig(dialect=dialect))


def context(project: str | Path, *, place: str | None = None, **kwargs: Any) -> Any:
    """A ``sqlmesh.Context`` for the project folder ``project`` (its ``models/``, ``audits/``, ``tests/``).

    Embedded unless ``COURSEKIT_SQLMESH_GATEWAY`` is set; then the project's ``config.yaml`` and that
    gateway are used, and ``place`` is ignored.
    """
    _quiet()
    from sqlmesh import Context

    root = Path(project)
    if not root.is_dir():
        raise FileNotFoundError(f"no SQLMesh project at {root}: it needs a models/ folder of .sql models")
    gateway = os.environ.get(GATEWAY_ENV, "").strip()
    if gateway:
        return Context(paths=str(root), gateway=gateway, **kwargs)
    return Context(paths=str(root), config=config(place), **kwargs)
