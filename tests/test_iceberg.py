"""The course's Iceberg catalog: a real SQLite catalog in the state directory, names, leftovers, errors."""

from __future__ import annotations

import socket

import pyarrow as pa
import pytest

from coursekit import iceberg
from coursekit.errors import EngineUnreachable

SCHEMA = pa.schema([("order_id", pa.string()), ("amount", pa.float64())])


def test_local_catalog_commits_and_reads_back() -> None:
    cat = iceberg.catalog()
    table = iceberg.fresh_table(cat, iceberg.table_name("t_orders", place="ltest"), SCHEMA)
    table.append(pa.table({"order_id": ["a", "b"], "amount": [1.0, 2.0]}))
    again = iceberg.catalog().load_table("ltest.t_orders")
    assert again.scan().to_arrow().num_rows == 2
    assert len(again.snapshots()) == 1


def test_fresh_table_replaces_a_leftover() -> None:
    cat = iceberg.catalog()
    name = iceberg.table_name("t_left", place="ltest")
    iceberg.fresh_table(cat, name, SCHEMA).append(pa.table({"order_id": ["a"], "amount": [1.0]}))
    table = iceberg.fresh_table(cat, name, SCHEMA)
    assert table.scan().to_arrow().num_rows == 0 and not table.snapshots()


def test_names_get_the_learner_prefix_on_a_shared_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    assert iceberg.table_name("orders", place="l22") == "l22.orders"
    monkeypatch.setenv(iceberg.URI_ENV, "http://127.0.0.1:1")
    monkeypatch.setenv("COURSEKIT_LEARNER", "ada")
    assert iceberg.table_name("orders", place="l22") == "ada-l22.orders"
    with pytest.raises(ValueError, match="lower-case"):
        iceberg.table_name("Orders", place="l22")


def test_check_reports_the_local_catalog() -> None:
    ok, found, fix = iceberg.check()
    assert ok and "SQLite Iceberg catalog" in found and fix == ""


def test_an_unreachable_rest_catalog_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:   # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(iceberg.URI_ENV, f"http://127.0.0.1:{port}")
    with pytest.raises(EngineUnreachable, match="no Iceberg REST catalog answered") as raised:
        iceberg.catalog()
    assert iceberg.URI_ENV in raised.value.fix
    ok, found, fix = iceberg.check()
    assert not ok and "no Iceberg REST catalog answered" in found and iceberg.URI_ENV in fix


def test_a_uri_that_is_not_http_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(iceberg.URI_ENV, "thrift://host:9083")
    with pytest.raises(ValueError, match="REST catalog"):
        iceberg.catalog()
    assert iceberg.check()[0] is False
