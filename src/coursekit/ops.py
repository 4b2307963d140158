"""Operating a data product (lesson 09): a month of pipeline runs, SLO arithmetic, planted incidents.

::

    from coursekit import ops
    runs = ops.refresh_runs(days=30, seed=9)        # every 10-minute refresh of orders_daily
    burn = ops.burn_rate(bad_minutes, "1h", slo=0.99)
    broken = ops.plant_unit_change(payments, since)  # payments v2.14 writes euros into amount_cents
    outputs = ops.run_models({"orders_daily": sql, ...}, {"orders": frame, ...})
    ops.delta_history(uri)                           # a Delta table's commits, newest first
    ops.code_owners("models/marts/x.sql", text)      # who CODEOWNERS asks to review a path

Everything is seeded: the same arguments give the same rows on every machine. Times are UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pathspec

from coursekit.data import EPOCH


@dataclass(frozen=True)
class BurnRateAlert:
    """One row of the SRE Workbook's multiwindow, multi-burn-rate alerting table (Table 5-8).

    It fires when the burn rate over **both** ``long`` and ``short`` (pandas offsets, e.g. ``"1h"``)
    is at least ``burn``; at that rate ``budget_spent`` of a 30-day error budget is gone in ``long``.
    """

    severity: str
    long: str
    short: str
    burn: float
    budget_spent: float


#: The Workbook's recommended starting point for a 30-day SLO ("Alerting on SLOs", Table 5-8).
WORKBOOK_ALERTS: tuple[BurnRateAlert, ...] = (
    BurnRateAlert("page", "1h", "5min", 14.4, 0.02),
    BurnRateAlert("page", "6h", "30min", 6.0, 0.05),
    BurnRateAlert("ticket", "3D", "6h", 1.0, 0.10),
)


def burn_rate(bad: pd.Series, window: str, slo: float) -> pd.Series:
    """How fast ``bad`` spends the error budget: the fraction of bad observations in the trailing
    ``window`` (a pandas offset such as ``"1h"``, ending at and including each timestamp), divided
    by the fraction the SLO allows, ``1 - slo``. A burn rate of 1 spends the budget exactly over
    the SLO's period; 14.4 spends a 30-day budget in 50 hours.

    ``bad`` is a boolean Series on a sorted ``DatetimeIndex`` (one row per observation).
    """
    if not 0 < slo < 1:
        raise ValueError(f"slo is a fraction between 0 and 1 (e.g. 0.99), not {slo!r}")
    if not isinstance(bad.index, pd.DatetimeIndex) or not bad.index.is_monotonic_increasing:
        raise ValueError("bad needs a sorted DatetimeIndex: one row per observation, oldest first")
    return bad.astype(float).rolling(window).mean() / (1 - slo)


def refresh_runs(days: int = 30, seed: int = 9, *, start: datetime | None = None, every_min: int = 10,
                 fail_rate: float = 0.01, outage: tuple[float, float] | None = (9.55, 80.0),
                 slow: tuple[float, float, float] | None = (19.3, 22.8, 13.5),
                 late_source: tuple[float, float, float] | None = (25.12, 4.0, 0.85)) -> pd.DataFrame:
    """Brightcart's ``orders_daily`` refresh job over ``days`` days: one row per scheduled run.

    A run starts every ``every_min`` minutes from ``start`` (default: ``days`` before
    :data:`coursekit.data.EPOCH`, at midnight UTC) and publishes the orders placed up to a minute
    or two before it started (``data_until``), a few minutes later (``finished_at``), unless it
    fails (``status='failed'``: nothing is published, ``finished_at`` is when it gave up).
    ``rows_expected`` is how many orders the source holds for the run's interval, ``rows_loaded``
    how many the run published.

    Three things happen besides the usual ``fail_rate`` of failures, all seeded:

    * ``outage = (day, minutes)``: from that (fractional) day on, every run fails for that many minutes;
    * ``slow = (from_day, to_day, minutes)``: runs take about that many minutes instead of about 4 (a
      warehouse short of capacity), so the data is a little late most of the time;
    * ``late_source = (day, hours, share)``: for that many hours only ``share`` of the rows have
      arrived when the runs read them (a late upstream partition).

    Pass ``None`` to leave one out.
    """
    rng = np.random.default_rng(seed + 9)
    if start is None:
        start = (EPOCH - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    origin = pd.Timestamp(start).tz_convert("UTC") if pd.Timestamp(start).tzinfo else pd.Timestamp(start, tz="UTC")
    n = days * 24 * 60 // every_min
    at = origin + pd.to_timedelta(np.arange(n) * every_min, unit="min")
    day = (at - origin) / pd.Timedelta(days=1)
    failed = rng.random(n) < fail_rate
    if outage is not None:
        failed |= (day >= outage[0]) & (day < outage[0] + outage[1] / 1440)
    typical = np.full(n, 4.0)
    if slow is not None:
        typical[(day >= slow[0]) & (day < slow[1])] = slow[2]
    duration = pd.to_timedelta(np.round(rng.lognormal(np.log(typical), 0.3) * 60), unit="s")
    lag = pd.to_timedelta(np.round(rng.uniform(60, 180, n)), unit="s")
    hour = np.asarray(at.hour)
    per_run = 9.0 * (0.45 + np.clip(np.sin((hour - 6) / 24 * 2 * np.pi), -0.4, 1.0)) * every_min / 10
    expected = rng.poisson(np.clip(per_run, 1.0, None))
    share = np.ones(n)
    if late_source is not None:
        share[(day >= late_source[0]) & (day < late_source[0] + late_source[1] / 24)] = late_source[2]
    loaded = np.where(failed, 0, np.floor(expected * share)).astype(int)
    return pd.DataFrame({
        "run_id": [f"R{i:05d}" for i in range(1, n + 1)],
        "started_at": at,
        "finished_at": at + duration,
        "status": np.where(failed, "failed", "success"),
        "data_until": at - lag,
        "rows_expected": expected,
        "rows_loaded": loaded,
    })


def plant_unit_change(payments: pd.DataFrame, since: datetime, *, column: str = "amount_cents") -> pd.DataFrame:
    """A copy of ``payments`` in which every attempt created at or after ``since`` carries its
    amount in **euros** in ``column`` (rounded to a whole number), as a payments-service release
    that switched to major units would write it. Nothing else changes: same rows, same types."""
    broken = payments.copy()
    after = broken["created_at"] >= pd.Timestamp(since)
    broken.loc[after, column] = (broken.loc[after, column] / 100).round().astype(broken[column].dtype)
    return broken


def run_models(models: Mapping[str, str], tables: Mapping[str, pd.DataFrame], *,
               errors: str = "raise") -> dict[str, Any]:
    """Run SQL models (``{name: SELECT ...}``, DuckDB dialect) on source ``tables`` in a fresh
    in-memory DuckDB; return every model's rows as a DataFrame. A model may read sources and other
    models: each becomes a table, built after the models it reads. The session time zone is UTC.

    ``errors="keep"``: a model that fails (a renamed column, a missing table) maps to its
    exception instead of stopping the run, and so does every model that reads it.
    """
    import duckdb
    import sqlglot
    from sqlglot import exp

    if errors not in ("raise", "keep"):
        raise ValueError(f"errors is 'raise' or 'keep', not {errors!r}")
    reads = {}
    for name, sql in models.items():
        tree = sqlglot.parse_one(sql, read="duckdb")
        ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
        reads[name] = {t.name for t in tree.find_all(exp.Table)} - ctes
    unknown = {t for used in reads.values() for t in used} - set(models) - set(tables)
    if unknown and errors == "raise":
        raise ValueError(f"the models read {sorted(unknown)}, which are neither sources nor models")
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in path:
            raise ValueError(f"the models read each other in a cycle: {' -> '.join((*path, name))}")
        for dependency in sorted(reads[name] & set(models)):
            visit(dependency, (*path, name))
        order.append(name)

    for name in models:
        visit(name, ())
    out: dict[str, Any] = {}
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for table, frame in tables.items():
            con.register(table, frame)
        for name in order:
            try:
                con.execute(f"CREATE TABLE {name} AS {models[name]}")
                out[name] = con.execute(f"SELECT * FROM {name}").df()  # noqa: S608 - names of models
            except duckdb.Error as exc:
                if errors == "raise":
                    raise
                out[name] = exc
        return {name: out[name] for name in models}
    finally:
        con.close()


def changed_columns(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    """The ``"model.column"`` outputs whose values differ between two runs of the same models
    (:func:`run_models`), compared as multisets of values (row order does not matter). A model
    that failed in either run counts as changed in every column it had."""
    changed = set()
    for name, old in before.items():
        new = after.get(name)
        if not isinstance(old, pd.DataFrame):
            continue
        for column in old.columns:
            if (not isinstance(new, pd.DataFrame) or column not in new.columns
                    or sorted(map(str, old[column])) != sorted(map(str, new[column]))):
                changed.add(f"{name}.{column}")
    return changed


def timeline(events: Mapping[str, Any]) -> pd.DataFrame:
    """An incident's timeline, ``{what happened: when}``, as a table sorted by time (UTC)."""
    frame = pd.DataFrame({"event": list(events), "at": pd.to_datetime(list(events.values()), utc=True)})
    return frame.sort_values("at", ignore_index=True)


def delta_history(uri: str, storage_options: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``DESCRIBE HISTORY`` of the Delta table at ``uri``, newest first: each commit's version, operation,
    write mode and predicate, rows added, and the custom metadata the lesson's writers record with
    ``CommitProperties(custom_metadata=...)`` (``run_at``, ``git_sha``, ``reason``; ``None`` where absent)."""
    from deltalake import DeltaTable

    rows = []
    for commit in DeltaTable(uri, storage_options=dict(storage_options or {})).history():
        params, metrics = commit.get("operationParameters") or {}, commit.get("operationMetrics") or {}
        rows.append({"version": commit["version"], "operation": commit["operation"], "mode": params.get("mode"),
                     "predicate": params.get("predicate"), "rows added": metrics.get("num_added_rows"),
                     "run_at": commit.get("run_at"), "git_sha": commit.get("git_sha"),
                     "reason": commit.get("reason")})
    return pd.DataFrame(rows)


def code_owners(path: str, codeowners: str) -> list[str]:
    """The owners GitHub requests a review from when a pull request changes ``path``, given the text of a
    ``CODEOWNERS`` file: those of the **last** pattern that matches (gitignore-style patterns, ``#``
    comments); ``[]`` when no pattern matches."""
    found: list[str] = []
    for line in codeowners.splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            pattern, *owners = entry.split()
            if pathspec.GitIgnoreSpec.from_lines([pattern]).match_file(path):
                found = owners
    return found
