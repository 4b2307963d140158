"""Data quality machinery: the orders pipeline under test and its planted defects, running a test
suite against each version, quarantine, and anomaly checks (freshness, volume, distribution).

::

    from coursekit import quality
    print(quality.pipeline_source())                   # Brightcart's orders pipeline (lesson 08, Lab 1)
    broken = quality.load_pipeline("unit_error")       # the same module with one defect planted
    orders, payments, customers = quality.sample_inputs()
    broken.paid_orders(orders, payments, customers)    # amounts in cents: a test should say so
    quality.run_tests("tests", "mutants/unit_error.py")   # {test name: "passed" | "failed"}

A *defect* is a one-line edit of the pipeline's source (:data:`DEFECTS`), the way mutation testing
makes its mutants: a good test suite passes on the correct pipeline and fails on each mutant. The
suite receives the pipeline under test from a ``pipeline`` fixture, which its ``conftest.py`` loads
from the file :data:`PIPELINE_ENV` names (the shape of Lab 1's grader, :mod:`coursekit.mutation`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from coursekit import data

PIPELINE_SOURCE = '''\
"""Brightcart's orders pipeline: which orders were paid, and the revenue of each UTC day.

paid_orders(orders, payments, customers): one row per order whose payment was captured, with the
    customer's segment, the amount paid in euros and the UTC day the order was placed.
daily_revenue(paid): number of orders and revenue in euros per UTC day and region.
"""

import duckdb
import pandas as pd

PAID_ORDERS = """
WITH landed AS (    -- the checkout feed is at-least-once: keep one row per order
    SELECT * FROM orders
    QUALIFY row_number() OVER (PARTITION BY order_id ORDER BY placed_at) = 1
),
captured AS (       -- payments has one row per attempt; revenue is what was captured
    SELECT order_id, amount_cents FROM payments
    WHERE status = 'captured'
)
SELECT o.order_id, o.customer_id, c.segment, o.region, o.category, o.items,
       p.amount_cents / 100 AS amount,                              -- cents to euros
       o.placed_at,
       CAST(timezone('UTC', o.placed_at) AS DATE) AS order_date     -- the UTC day
FROM landed AS o
JOIN captured AS p ON p.order_id = o.order_id
JOIN customers AS c ON c.customer_id = o.customer_id
ORDER BY o.order_id
"""

DAILY_REVENUE = """
SELECT order_date, region, count(*) AS orders, round(sum(amount), 2) AS revenue_eur
FROM paid
GROUP BY order_date, region
ORDER BY order_date, region
"""


def _query(sql, **tables):
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, frame in tables.items():
            con.register(name, frame)
        return con.sql(sql).df()
    finally:
        con.close()


def paid_orders(orders, payments, customers):
    paid = _query(PAID_ORDERS, orders=orders, payments=payments, customers=customers)
    paid["order_date"] = paid["order_date"].dt.date
    return paid


def daily_revenue(paid):
    daily = _query(DAILY_REVENUE, paid=paid)
    daily["order_date"] = daily["order_date"].dt.date
    return daily
'''


@dataclass(frozen=True)
class Defect:
    """A planted defect: replace ``find`` (which occurs exactly once) with ``replace``."""

    name: str
    what: str
    find: str
    replace: str


DEFECTS: dict[str, Defect] = {d.name: d for d in (
    Defect("dropped_filter", "the filter on captured payments is gone: declined and refunded attempts count",
           "    WHERE status = 'captured'\n", ""),
    Defect("wrong_join_key", "customers are joined on the region both tables have, not on customer_id",
           "ON c.customer_id = o.customer_id", "ON c.region = o.region"),
    Defect("unit_error", "amounts stay in cents (payments' unit) instead of euros",
           "p.amount_cents / 100 AS amount", "p.amount_cents AS amount"),
    Defect("duplicated_rows", "the at-least-once feed is not deduplicated: a replayed order counts twice",
           "    QUALIFY row_number() OVER (PARTITION BY order_id ORDER BY placed_at) = 1\n", ""),
    Defect("timezone_slip", "days are cut at local midnight (Europe/Amsterdam) instead of UTC midnight",
           "timezone('UTC', o.placed_at)", "timezone('Europe/Amsterdam', o.placed_at)"),
)}


def pipeline_source(defect: str | None = None, *, source: str = PIPELINE_SOURCE,
                    defects: dict[str, Defect] | None = None) -> str:
    """The pipeline's source, correct (``defect=None``) or with one of ``defects`` (default :data:`DEFECTS`,
    for :data:`PIPELINE_SOURCE`) planted in it."""
    if defect is None:
        return source
    known = DEFECTS if defects is None else defects
    if defect not in known:
        raise KeyError(f"{defect!r} is not a planted defect; they are {', '.join(known)}")
    planted = known[defect]
    if source.count(planted.find) != 1:
        raise ValueError(f"defect {defect}: {planted.find!r} occurs {source.count(planted.find)} times, not once")
    return source.replace(planted.find, planted.replace)


def load_pipeline(defect: str | None = None, *, source: str | None = None) -> ModuleType:
    """The pipeline as a fresh module object, correct or with ``defect`` planted (nothing written)."""
    text = pipeline_source(defect) if source is None else source
    module = ModuleType(f"pipeline_{defect or 'correct'}")
    exec(compile(text, f"<pipeline {defect or 'correct'}>", "exec"), module.__dict__)  # noqa: S102 - our own source
    return module


def write_pipelines(folder: str | Path) -> dict[str, Path]:
    """Write the correct pipeline and one file per defect into ``folder``: ``{version: file}``."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for version in ("correct", *DEFECTS):
        path = root / f"{version}.py"
        path.write_text(pipeline_source(None if version == "correct" else version), encoding="utf-8")
        files[version] = path
    return files


def replay(frame: pd.DataFrame, rows: int = 2, seed: int = 7) -> pd.DataFrame:
    """``frame`` with ``rows`` of its rows delivered a second time, at the end (an at-least-once replay)."""
    rng = np.random.default_rng(seed)
    again = frame.iloc[np.sort(rng.choice(len(frame), size=rows, replace=False))]
    return pd.concat([frame, again], ignore_index=True)


def sample_inputs(n_orders: int = 40, seed: int = 12, *, n_customers: int = 30,
                  replayed: int = 2) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Small, consistent inputs for the pipeline's tests: ``(orders, payments, customers)``.

    With the defaults they hold every case the pipeline must get right: orders paid at the first
    attempt, paid after a declined attempt, never paid, paid then refunded, and ``replayed`` orders
    delivered twice by the at-least-once feed. Placement times are those of :func:`data.orders`
    (an hour from 09:00 UTC): edit them in a test that needs other times.
    """
    orders = replay(data.orders(n_orders, seed, n_customers=n_customers), replayed, seed)
    payments = data.payments(n_orders, seed, n_customers=n_customers)
    return orders, payments, data.customers(n_customers, seed)


# --- running a test suite against each version ------------------------------------------------------

#: The environment variable a suite's ``conftest.py`` reads to find the pipeline file to test (lesson 08).
PIPELINE_ENV = "PIPELINE_UNDER_TEST"


class _Outcomes:
    """A pytest plugin that records each test's outcome ("error" when its setup or teardown fails)."""

    def __init__(self) -> None:
        self.found: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        name = report.nodeid.split("::", 1)[-1]
        if report.when == "call":
            self.found[name] = report.outcome
        elif report.outcome != "passed":
            self.found[name] = "error"


def run_tests(tests: str | Path, pipeline: str | Path, *, args: Sequence[str] = (),
              echo: bool = False) -> dict[str, str]:
    """Run the pytest suite in ``tests`` against the pipeline file ``pipeline``, in this process.

    The suite's ``conftest.py`` loads the module under test from the file that the environment
    variable :data:`PIPELINE_ENV` names (set here for the run, then restored; see lesson 08).
    Returns ``{test name: "passed" | "failed" | ...}``; ``echo`` prints pytest's report.
    """
    from coursekit import mutation

    folder = Path(tests).resolve()
    collector = _Outcomes()
    code, output = mutation.pytest_here(folder, folder.parent, args=["--tb=line", *args], plugins=[collector],
                                        env={PIPELINE_ENV: str(Path(pipeline).resolve())})
    if echo:
        print(output.strip())
    if code not in (0, 1):  # pytest's OK and TESTS_FAILED
        raise RuntimeError(f"pytest could not run the suite (exit code {code}):\n{output[-2000:]}")
    return collector.found


def defect_matrix(tests: str | Path, pipelines: dict[str, Path]) -> pd.DataFrame:
    """Which test fails on which version: rows are versions, columns tests, ``True`` where it fails."""
    rows = {version: run_tests(tests, path) for version, path in pipelines.items()}
    return pd.DataFrame({v: {t: o != "passed" for t, o in r.items()} for v, r in rows.items()}).T


# --- quarantine --------------------------------------------------------------------------------------


def row_rules(contract: dict[str, Any], *, order_by: str) -> dict[str, str]:
    """The row-level rules of an ODCS contract's first schema object, as SQL predicates of a bad row.

    ``{reason: predicate}`` from each property's ``required`` (missing values), ``unique`` (a value
    repeated in the batch: every copy after the first by ``order_by``), ``invalidValues`` metric
    (``validValues``) and ``sql`` quality rules of the form ``SELECT COUNT(*) FROM t WHERE <bad row>``.
    Table-level rules (``rowCount``) say nothing about a row and are left out.
    """
    import sqlglot

    rules: dict[str, str] = {}
    for prop in contract["schema"][0].get("properties", []):
        name = prop["name"]
        if prop.get("required"):
            rules[f"{name} missing"] = f"{name} IS NULL"
        if prop.get("unique"):
            rules[f"{name} repeated"] = f"row_number() OVER (PARTITION BY {name} ORDER BY {order_by}) > 1"
        for rule in prop.get("quality", []):
            if rule.get("metric") == "invalidValues" and "validValues" in rule.get("arguments", {}):
                allowed = ", ".join("'" + str(v).replace("'", "''") + "'" for v in rule["arguments"]["validValues"])
                rules[f"{name} not in the valid values"] = f"{name} NOT IN ({allowed})"
            elif rule.get("type") == "sql" and rule.get("mustBe") == 0:
                where = sqlglot.parse_one(rule["query"], read="duckdb").args.get("where")
                if where is not None:
                    rules[rule.get("description") or f"{name}: {where.this.sql('duckdb')}"] = where.this.sql("duckdb")
    return rules


class BatchRejected(ValueError):
    """The whole batch must fail: a table-level check failed, or too many rows are bad."""


def quarantine(batch: pd.DataFrame, schema: Any, *, max_bad_fraction: float = 0.05,
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``batch`` into ``(valid, quarantined)`` with a pandera schema (or DataFrameModel).

    Validation is lazy, so every failing row is found; ``quarantined`` has the batch's columns and
    a ``reason`` (the failed checks). A failure no row can be blamed for (a missing column, a wrong
    dtype) or more than ``max_bad_fraction`` of bad rows raises :class:`BatchRejected`.
    """
    import pandera.pandas as pa

    if not batch.index.is_unique:
        raise ValueError("the batch's index must be unique: quarantine names rows by their index label")
    if isinstance(schema, type) and issubclass(schema, pa.DataFrameModel):
        schema = schema.to_schema()
    try:
        schema.validate(batch, lazy=True)
        cases = pd.DataFrame(columns=["schema_context", "column", "check", "index"])
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    whole = cases[cases["index"].isna()]
    if len(whole):
        found = "; ".join(sorted({f"{c.column}: {c.check}" for c in whole.itertuples()}))
        raise BatchRejected(f"the batch fails as a whole ({found}): no row can be blamed, nothing is loaded")
    cases = cases.assign(reason=[str(c.check) if c.schema_context == "DataFrameSchema" else f"{c.column}: {c.check}"
                                 for c in cases.itertuples()])
    reasons = cases.groupby("index")["reason"].agg(lambda r: "; ".join(sorted(set(r))))
    labels = [label for label in batch.index if label in reasons.index]
    if len(batch) and len(labels) / len(batch) > max_bad_fraction:
        raise BatchRejected(f"{len(labels)} of {len(batch)} rows ({len(labels) / len(batch):.0%}) fail, more than "
                            f"the {max_bad_fraction:.0%} a batch may quarantine: something upstream is broken")
    return batch.drop(index=labels), batch.loc[labels].assign(reason=reasons.reindex(labels).to_numpy())


@dataclass(frozen=True)
class LandingBatch:
    """A batch of the orders feed with planted bad rows: ``batch``, ``defects`` (index → kind), ``clean``."""

    batch: pd.DataFrame
    defects: pd.Series
    clean: pd.DataFrame


def landing_batch(n: int = 400, seed: int = 21, *, cents_rows: int = 3, capitalised: int = 3,
                  over_limit: int = 0, zero_amounts: int = 0) -> LandingBatch:
    """An hour of the orders feed as it lands, with realistic bad rows planted.

    ``clean`` is the batch as it should be: :func:`data.orders` plus a legitimate wholesale basket of
    50 items. ``batch`` has, in addition: two orders without ``customer_id`` (a guest-checkout bug),
    ``capitalised`` regions capitalised by a new app (``"North"``), ``cents_rows`` cheap baskets whose
    amount was sent in cents, ``over_limit`` baskets of more than 50 items (cheap ones, so the price
    per item looks normal), ``zero_amounts`` baskets sent with an amount of 0, and two orders
    delivered twice (a replay). ``defects`` names each bad row.
    """
    rng = np.random.default_rng(seed + 8)
    clean = data.orders(n, seed)
    priciest = int((clean["amount"] / clean["items"]).idxmax())
    clean.loc[priciest, "amount"] = round(50 * clean.loc[priciest, "amount"] / clean.loc[priciest, "items"], 2)
    clean.loc[priciest, "items"] = 50
    batch = clean.copy()
    kinds: dict[int, str] = {}
    cheap = batch[batch["items"] <= 2].sort_values("amount").index[:cents_rows]
    batch.loc[cheap, "amount"] = (batch.loc[cheap, "amount"] * 100).round(2)
    kinds.update(dict.fromkeys(cheap, "amount in cents"))
    if cents_rows > len(cheap):
        rest = batch.index.difference(cheap).difference([priciest])
        more = rng.choice(rest, size=cents_rows - len(cheap), replace=False)
        batch.loc[more, "amount"] = (batch.loc[more, "amount"] * 100).round(2)
        kinds.update(dict.fromkeys(more, "amount in cents"))
    free = batch.index.difference(list(kinds)).difference([priciest])
    guests = rng.choice(free, size=2, replace=False)
    batch.loc[guests, "customer_id"] = None
    kinds.update(dict.fromkeys(guests, "no customer_id"))
    capital = rng.choice(free.difference(guests), size=capitalised, replace=False)
    batch.loc[capital, "region"] = batch.loc[capital, "region"].str.capitalize()
    kinds.update(dict.fromkeys(capital, "region not in the list"))
    free = free.difference(guests).difference(capital)
    if over_limit:   # drawn only when asked for, so that the other rows stay those of the same seed
        bulk = rng.choice(free, size=over_limit, replace=False)
        batch.loc[bulk, "items"] = 51 + rng.integers(0, 30, size=over_limit)
        batch.loc[bulk, "amount"] = (batch.loc[bulk, "items"] * rng.uniform(1.0, 3.0, size=over_limit)).round(2)
        kinds.update(dict.fromkeys(bulk, "more than 50 items"))
        free = free.difference(bulk)
    if zero_amounts:
        zero = rng.choice(free, size=zero_amounts, replace=False)
        batch.loc[zero, "amount"] = 0.0
        kinds.update(dict.fromkeys(zero, "amount not positive"))
        free = free.difference(zero)
    again = np.sort(rng.choice(free, size=2, replace=False))
    batch = pd.concat([batch, batch.loc[again]], ignore_index=True)
    kinds.update(dict.fromkeys(range(len(batch) - 2, len(batch)), "replayed copy"))
    return LandingBatch(batch, pd.Series(kinds, name="defect").sort_index(), clean)


# --- anomaly checks ----------------------------------------------------------------------------------


_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hr": 3600,
            "hour": 3600, "d": 86400, "day": 86400, "y": 365 * 86400, "yr": 365 * 86400, "year": 365 * 86400}


def sla(contract: dict[str, Any], name: str) -> pd.Timedelta:
    """An ODCS contract's service-level property ``name`` (e.g. ``latency``) as a duration."""
    for prop in contract.get("slaProperties", []):
        if prop.get("property") == name:
            unit = str(prop.get("unit", "d")).lower()
            unit = unit if unit in _SECONDS else unit.removesuffix("s")
            if unit not in _SECONDS:
                raise ValueError(f"slaProperties {name}: unit {prop.get('unit')!r} is not a unit of time")
            return pd.Timedelta(seconds=float(prop["value"]) * _SECONDS[unit])
    raise KeyError(f"the contract has no slaProperties entry {name!r}")


def robust_z(values: pd.Series, window: int = 28, min_periods: int = 14) -> pd.Series:
    """How unusual each value is against the ``window`` values before it: (x − median) / (1.4826 · MAD).

    Only earlier values make the baseline, as a monitor running each day would have them; values
    with fewer than ``min_periods`` before them have none (NaN). 1.4826 · MAD estimates σ for normal data, and a few
    outliers in the window barely move it, unlike a mean and standard deviation.
    """
    past = values.astype(float).shift(1).rolling(window, min_periods=min_periods)
    median = past.median()
    mad = past.apply(lambda w: np.nanmedian(np.abs(w - np.nanmedian(w))), raw=True)
    return (values - median) / (1.4826 * mad.replace(0.0, np.nan))


def psi(reference: Iterable[float], current: Iterable[float], bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``: Σ (c − r) · ln(c / r) over
    ``bins`` quantile bins of the reference (0 for the same distribution; larger is more shifted)."""
    ref = np.asarray(list(reference), dtype=float)
    cur = np.asarray(list(current), dtype=float)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1))[1:-1])
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1) / len(ref)
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1) / len(cur)
    r, c = np.clip(r, 1e-4, None), np.clip(c, 1e-4, None)
    return float(np.sum((c - r) * np.log(c / r)))


def ks_2samp(a: Iterable[float], b: Iterable[float]) -> tuple[float, float]:
    """The two-sample Kolmogorov–Smirnov test: ``(statistic, p-value)``, the p-value asymptotic.

    The statistic is the largest distance between the two empirical distribution functions; the
    p-value is the tail of Kolmogorov's limiting distribution at ``sqrt(n·m / (n + m)) · statistic``
    (``scipy.stats.kstwobign.sf``), without importing scipy.stats. ``scipy.stats.ks_2samp`` gives
    the same statistic and, for finite samples, slightly different p-values.
    """
    x = np.sort(np.asarray(list(a), dtype=float))
    y = np.sort(np.asarray(list(b), dtype=float))
    both = np.concatenate([x, y])
    distance = np.abs(np.searchsorted(x, both, side="right") / len(x) - np.searchsorted(y, both, side="right") / len(y))
    statistic = float(distance.max())
    z = np.sqrt(len(x) * len(y) / (len(x) + len(y))) * statistic
    if z < 0.2:   # the alternating series converges slowly here, and the tail is 1 to twelve digits
        return statistic, 1.0
    k = np.arange(1, 101)
    return statistic, float(np.clip(2 * np.sum((-1.0) ** (k - 1) * np.exp(-2 * k**2 * z**2)), 0.0, 1.0))


def volume_history(seed: int = 7, days: int = 140, *, growth: float = 0.003) -> tuple[pd.DataFrame, list[Any]]:
    """Daily row counts of the orders feed, ``(daily, broken)``: :func:`data.daily_quality` with
    business growth (``growth`` per day), weekends 25 % busier, and three days the feed broke.

    The broken days (which days depends on ``seed``): the outage of ``daily_quality`` (about half the
    rows), a Saturday with a partial outage (a quarter of its rows lost, so it looks like an ordinary
    weekday) and a Wednesday loaded twice in part (60 % more rows). ``broken`` lists their dates.
    """
    start = datetime(2026, 11, 2, tzinfo=UTC) - timedelta(days=days)
    outage = 35 + seed % 10
    daily = data.daily_quality(days, seed, start=start, spike_day=outage)[["date", "rows"]].copy()
    rows = daily["rows"].to_numpy(dtype=float) * (1 + growth * np.arange(days))
    weekday = pd.to_datetime(daily["date"]).dt.dayofweek.to_numpy()
    saturday = 60 + (seed * 7) % 15
    saturday += int(np.argmax(weekday[saturday:] == 5))
    wednesday = 95 + (seed * 3) % 15
    wednesday += int(np.argmax(weekday[wednesday:] == 2))
    rows[saturday] *= 0.75
    rows[wednesday] *= 1.6
    daily["rows"] = np.round(rows).astype(int)
    return daily, [daily["date"].iloc[d] for d in (outage, saturday, wednesday)]
