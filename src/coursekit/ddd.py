"""Lineage of a data product's SQL, for lesson 02 (domain-driven data architecture).

::

    from coursekit import ddd
    ddd.lineage("SELECT * FROM orders.orders o JOIN payments.order_payments p USING (order_id)")
    # {'orders.orders', 'payments.order_payments'}
    ddd.domains_read("SELECT * FROM orders.orders")     # {'orders'}

In the course's mesh every domain's database is attached under the domain's name, so a product's
SQL names each input ``<domain>.<table>``. :func:`lineage` reads those names from DuckDB's own
parse tree (``json_serialize_sql``): the query is parsed, not run, so the tables need not exist.
Common table expressions and other unqualified names are not inputs from a domain and are left out.
"""

from __future__ import annotations

import json
from typing import Any

from coursekit import duck


def _tables(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        if node.get("type") == "BASE_TABLE":
            domain = node.get("catalog_name") or node.get("schema_name")
            if domain:  # unqualified: a CTE's name (or a table of no domain)
                found.add(f"{domain}.{node['table_name']}")
        for value in node.values():
            _tables(value, found)
    elif isinstance(node, list):
        for value in node:
            _tables(value, found)


def lineage(sql: str) -> set[str]:
    """The tables ``sql`` reads, as ``{"<domain>.<table>", ...}`` (from DuckDB's parse tree).

    Raises ``ValueError`` with DuckDB's message when ``sql`` does not parse.
    """
    con = duck.connect(None)
    try:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    finally:
        con.close()
    if tree.get("error"):
        raise ValueError(f"this SQL does not parse: {tree.get('error_message', tree)}")
    found: set[str] = set()
    _tables(tree["statements"], found)
    return found


def domains_read(sql: str) -> set[str]:
    """The domains whose databases ``sql`` reads (the part of each :func:`lineage` name before the dot)."""
    return {table.split(".", 1)[0] for table in lineage(sql)}
