"""Lineage of a data product's SQL (lesson 02): the domain tables it reads, from DuckDB's parse tree."""

from __future__ import annotations

import pytest

from coursekit import ddd


def test_lineage_names_every_domain_table_a_query_reads() -> None:
    sql = """
        WITH delivery AS (SELECT order_id, max(delivered_at) AS at FROM fulfilment.shipments GROUP BY order_id)
        SELECT o.order_id, p.paid_eur, d.at
        FROM orders.orders o
        LEFT JOIN payments.order_payments p USING (order_id)
        LEFT JOIN delivery d USING (order_id)
        WHERE o.customer_id IN (SELECT customer_id FROM customers.main.customers)
    """
    assert ddd.lineage(sql) == {"fulfilment.shipments", "orders.orders", "payments.order_payments",
                                "customers.customers"}, "CTEs are not inputs; subqueries and 3-part names are"
    assert ddd.domains_read(sql) == {"fulfilment", "orders", "payments", "customers"}


def test_lineage_parses_without_running_and_rejects_broken_sql() -> None:
    assert ddd.lineage("SELECT * FROM nowhere.no_such_table") == {"nowhere.no_such_table"}
    assert ddd.lineage("SELECT 1") == set()
    with pytest.raises(ValueError, match="does not parse"):
        ddd.lineage("SELEC * FROM orders.orders")
