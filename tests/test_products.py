"""The self-serve platform of lesson 03: descriptors, ports, SLOs, versions, the catalog, the scaffold."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from coursekit import contracts, duck, products


@pytest.fixture
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COURSEKIT_HOME", str(tmp_path))
    monkeypatch.delenv(duck.DIR_ENV, raising=False)
    return tmp_path


def test_descriptor_has_one_output_port_per_server_and_the_inputs() -> None:
    orders = products.with_parquet_port(contracts.load("orders"), Path("/data/orders"))
    product = products.descriptor(orders, inputs=[contracts.load("payments")])
    assert (product["apiVersion"], product["kind"], product["domain"]) == ("v1.0.0", "DataProduct", "orders")
    assert [(p["name"], p["type"], p["contractId"]) for p in product["outputPorts"]] == [
        ("orders-local", "tables", "urn:brightcart:orders:orders"),
        ("orders-parquet", "files", "urn:brightcart:orders:orders")]
    assert product["inputPorts"] == [{"name": "payments", "version": "1.0.0",
                                      "contractId": "urn:brightcart:payments:payments"}]
    assert orders["servers"][-1]["path"] == "/data/orders/{model}.parquet"
    modern = {key: value for key, value in orders.items() if key != "dataProduct"}  # deprecated since ODCS v3.1.0
    assert products.descriptor(modern)["id"] == "urn:brightcart:product:orders", "the domain names it then"


def test_a_file_port_is_tested_with_timestamp_types_its_tool_can_read() -> None:
    published = products.with_parquet_port(contracts.load("orders"), Path("/data/orders"))
    kept = copy.deepcopy(published)
    types = {p["name"]: p["physicalType"] for p in products.for_server(published, "parquet")["schema"][0]["properties"]}
    assert types["placed_at"] == "timestamp_tz" and types["items"] == "BIGINT"
    assert products.for_server(published, "local") == published, "a DuckDB server is tested as published"
    assert published == kept, "the published contract is not changed"
    with pytest.raises(KeyError, match="no server 'kafka'"):
        products.for_server(published, "kafka")


def test_freshness_is_the_newest_rows_age_at_the_reading() -> None:
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    rows = pd.DataFrame({"placed_at": [start, start + timedelta(minutes=50), start + timedelta(minutes=70)]})
    with duck.connect(None) as con:
        con.register("orders", rows)
        assert products.freshness(con, "orders", "placed_at", start + timedelta(hours=1)) == timedelta(minutes=10)
        assert products.freshness(con, "orders", "placed_at", start - timedelta(minutes=1)) is None
        report = products.slo_report(contracts.load("orders"), con, start + timedelta(hours=1, minutes=55))
    assert [(r["element"], r["objective"], r["met"]) for r in report] == [
        ("orders.placed_at", timedelta(hours=1), True)], "at 10:55 the newest row is the one of 10:10, 45 min old"
    customers = products.slo_report(contracts.load("customers"), None, start)
    assert customers[0]["measured"] is None and customers[0]["met"] is None, "no element: nothing to measure"
    with pytest.raises(ValueError, match="lower-case"):
        products.freshness(None, "orders; DROP TABLE orders", "placed_at", start)


def test_declared_physical_types_are_compared_with_the_table() -> None:
    contract = contracts.load("orders")
    contract["servers"] = []
    props = {p["name"]: p for p in contract["schema"][0]["properties"]}
    with duck.connect(None) as con:
        con.execute("CREATE TABLE orders (order_id VARCHAR, items BIGINT, amount DOUBLE, placed_at TIMESTAMPTZ)")
        assert products.physical_type_mismatches(contract, con) == [], "TIMESTAMP WITH TIME ZONE is TIMESTAMPTZ"
        props["items"]["physicalType"], props["amount"]["physicalType"] = "INTEGER", "DECIMAL(12,2)"
        props["order_id"]["physicalType"], props["placed_at"]["physicalType"] = "STRNG", "TEXT; DROP TABLE orders"
        assert products.physical_type_mismatches(contract, con) == [
            "orders.order_id: DuckDB has no type 'STRNG'", "orders.items is declared INTEGER but the column is BIGINT",
            "orders.amount is declared DECIMAL(12,2) but the column is DOUBLE",
            "orders.placed_at: 'TEXT; DROP TABLE orders' is not a type name"]
        assert con.execute("SELECT count(*) FROM orders").fetchone() == (0,), "the table is still there"


def test_the_scaffold_refuses_what_it_cannot_describe(own_home: Path) -> None:
    frame = pd.DataFrame({"return_id": ["R1"], "refunded_at": [datetime(2026, 11, 2, tzinfo=UTC)]})
    options = {"team": "Returns", "owner": "o@example.com", "primary_key": "return_id", "event_time": "refunded_at",
               "latency": (1, "d"), "purpose": "p", "usage": "u", "limitations": "l", "grain": "g"}
    with pytest.raises(ValueError, match="no description for"):
        products.scaffold("returns", frame, descriptions={"return_id": "id"}, **options)
    with pytest.raises(ValueError, match="lower-case"):
        products.scaffold("Returns", frame, descriptions={}, **options)
    assert not Path(duck.path("returns")).exists(), "nothing is written before the inputs are checked"


def test_a_scaffolded_product_lints_tests_versions_and_publishes(own_home: Path) -> None:
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    frame = pd.DataFrame({"return_id": ["R1", "R2"], "amount_cents": [120, 560],
                          "note": ["late", None], "refunded_at": [start, start + timedelta(hours=2)]})
    made = products.scaffold(
        "returns", frame, team="Returns", owner="returns@example.com", primary_key="return_id",
        event_time="refunded_at", latency=(1, "d"), purpose="Refunds: every one.", usage="Rates.",
        limitations="Cents.", grain="One row per refund.", place="t3",
        descriptions={"return_id": "id", "amount_cents": "cents", "note": "free text", "refunded_at": "when"})
    assert made.passed, made.tests
    assert set(made.tests) == {"test_contract_is_valid_odcs", "test_data_meets_its_contract",
                               "test_physical_types_are_the_tables"}
    assert "dataProduct" not in made.contract, "deprecated since ODCS v3.1.0: the template does not write it"
    props = {p["name"]: p for p in made.contract["schema"][0]["properties"]}
    assert props["return_id"]["primaryKey"] and props["amount_cents"]["logicalType"] == "integer"
    assert props["note"]["required"] is False and props["refunded_at"]["logicalType"] == "timestamp"
    assert made.contract["description"]["purpose"] == "Refunds: every one.", "text with a colon stays text"
    assert {p.name for p in made.folder.iterdir()} == {"returns.odcs.yaml", "returns.odps.yaml",
                                                        "test_returns_product.py"}

    wider = copy.deepcopy(made.contract)
    wider["version"] = "0.2.0"
    wider["schema"][0]["properties"].append({"name": "reason", "logicalType": "string", "required": False})
    narrower = copy.deepcopy(made.contract)
    narrower["schema"][0]["properties"] = [p for p in narrower["schema"][0]["properties"] if p["name"] != "note"]
    reworded = copy.deepcopy(made.contract)
    reworded["schema"][0]["properties"][1]["description"] = "euros"
    assert [products.semver_bump(made.contract, other) for other in (narrower, wider, reworded)] == [
        "major", "minor", "patch"]

    catalog = products.publish_catalog({"returns": made.contract}, own_home / "catalog")
    assert "Returns" in catalog.read_text(encoding="utf-8") and (catalog.parent / "returns.html").is_file()
    from datacontract.data_contract import DataContract

    exported = DataContract(data_contract=products.odcs(made.contract)).export("html")
    stamp = re.compile(r"\d\d \w{3} \d{4} \d\d:\d\d:\d\d UTC")
    page = (catalog.parent / "returns.html").read_text(encoding="utf-8")
    assert stamp.sub("", page) == stamp.sub("", exported), "the page is what `export html` renders"
    broken = copy.deepcopy(made.contract)
    broken["schema"][0]["properties"][0]["logicalType"] = "int"
    with pytest.raises(ValueError, match="not valid ODCS"):
        products.publish_catalog({"broken": broken}, own_home / "catalog")
    assert not (catalog.parent / "broken.html").exists()
