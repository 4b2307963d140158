"""Lesson 05's helpers: the legacy warehouse, the maturity rubric, reladiff on course connections, the cost model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from coursekit import data, duck, mesh, migration


@pytest.fixture
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COURSEKIT_HOME", str(tmp_path))
    monkeypatch.delenv(duck.DIR_ENV, raising=False)
    return tmp_path


def test_the_warehouse_holds_every_order_once_with_its_payments_and_parcels(own_home: Path) -> None:
    mesh.build(seed=3, n_orders=80, n_customers=30, place="t05")
    migration.build_warehouse(place="t05")
    con = duck.connect(None)
    for name in ("warehouse", "orders", "fulfilment"):
        con.execute(f"ATTACH '{duck.path(name, 't05')}' AS {name} (READ_ONLY)")
    orders, distinct, parcels = con.sql("SELECT count(*), count(DISTINCT order_id), sum(parcels) "
                                        "FROM warehouse.fct_orders").fetchone()
    assert orders == distinct == 80
    assert parcels == con.sql("SELECT count(*) FROM fulfilment.shipments").fetchone()[0]
    same = con.sql("SELECT count(*) FROM warehouse.fct_orders w JOIN orders.orders o USING (order_id) "
                   "WHERE w.gross_amount = round(o.amount, 2) AND w.customer_region = o.region").fetchone()[0]
    assert same == 80
    con.close()
    migration.build_warehouse(place="t05")      # rebuilding replaces, never appends
    with duck.connect("warehouse", place="t05", read_only=True) as again:
        assert again.sql("SELECT count(*) FROM fct_orders").fetchone()[0] == 80


def _facts(**changes: object) -> dict[str, object]:
    best = {"team": "Checkout", "owner": True, "own_database": True, "served_from": "domain", "lint": True,
            "described": True, "quality_rules": 3, "test": True, "test_ran": True, "checks": 20, "output_ports": 1,
            "monitored_latency": True, "classified": 1.0, "pii_restricted": True}
    return {**best, **changes}


def test_levels_are_cumulative() -> None:
    assert set(migration.maturity(_facts()).values()) == {3}
    levels = migration.maturity(_facts(lint=False, classified=0.5, served_from="warehouse"))
    assert levels["data as a product"] == 0, "a failing level 1 stops the climb, whatever level 3 says"
    assert levels["federated governance"] == 1 and levels["domain ownership"] == 2
    assert set(migration.RUBRIC) == set(migration.PRINCIPLES)
    assert all(len(steps) == 3 for steps in migration.RUBRIC.values())


def test_reladiff_runs_on_course_connections() -> None:
    import reladiff

    old, new = duck.connect(None), duck.connect(None)
    old.execute("CREATE TABLE t AS SELECT range AS id, range * 2 AS v FROM range(50)")
    new.execute("CREATE TABLE t AS SELECT range AS id, CASE WHEN range = 7 THEN 0 ELSE range * 2 END AS v "
                "FROM range(1, 50)")
    a, b = migration.reladiff_database(old), migration.reladiff_database(new)
    found = set(reladiff.diff_tables(reladiff.connect_to_table(a, "t", "id", extra_columns=("v",)),
                                     reladiff.connect_to_table(b, "t", "id", extra_columns=("v",))))
    assert found == {("-", ("0", "0")), ("-", ("7", "14")), ("+", ("7", "0"))}
    a.close()
    b.close()
    with pytest.raises(Exception, match="closed"):
        old.execute("SELECT 1")


def test_the_cost_model_has_a_fixed_cost_a_floor_and_a_ceiling() -> None:
    one, five = migration.people_needed(1), migration.people_needed(5)
    assert one["central"] < one["mesh"], "for one domain the platform and enabling teams cost more than they save"
    assert five["mesh"] - one["mesh"] == pytest.approx(4 * (1.05 + 0.1))
    assert math.isinf(migration.people_needed(40)["central"]), "a central team's output peaks, then falls"
    assert migration.people_needed(20)["central"] > migration.people_needed(20)["mesh"]
    assert migration.people_needed(3, automation=0.9)["mesh"] == pytest.approx(4 + 2 + 3 * 1.1), "the skills floor"


def test_reference_data_matches_the_generators() -> None:
    ref = migration.reference_data()
    assert list(ref["regions"]["region"]) == list(data.REGIONS)
    assert dict(zip(ref["currencies"]["currency"], ref["currencies"]["minor_unit"], strict=True))["EUR"] == 2


def test_what_reladiff_sees_duplicates_and_reduced_precision() -> None:
    """Lesson 05 relies on these: hashdiff reports a doubled row as one '+', joindiff refuses duplicate keys, and
    both sides are compared at the lower of their two precisions."""
    import reladiff

    once, twice = duck.connect(None), duck.connect(None)
    once.execute("CREATE TABLE t AS SELECT range AS id, (range / 3)::DECIMAL(12, 4) AS v FROM range(20)")
    twice.execute("CREATE TABLE t AS SELECT range AS id, (range / 3)::DECIMAL(12, 2) AS v FROM range(20)")
    twice.execute("INSERT INTO t SELECT * FROM t WHERE id = 3")
    twice.execute("CREATE TABLE t_once AS SELECT DISTINCT * FROM t")
    a, b = migration.reladiff_database(once), migration.reladiff_database(twice)

    def table(db: object, name: str) -> object:
        return reladiff.connect_to_table(db, name, "id", extra_columns=("v",))

    try:
        assert list(reladiff.diff_tables(table(a, "t"), table(b, "t"))) == [("+", ("3", "1.00"))], (
            "one '+' for the extra copy, and 0.3333 against 0.33 is no difference at two decimals")
        with pytest.raises(ValueError, match="Duplicate primary keys"):
            list(reladiff.diff_tables(table(b, "t_once"), table(b, "t")))
    finally:
        a.close()
        b.close()
