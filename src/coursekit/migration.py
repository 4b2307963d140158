"""From a central warehouse to a mesh, one domain at a time (lesson 05).

::

    from coursekit import mesh, migration
    mesh.build(place="l05")
    migration.build_warehouse(place="l05")            # the central team's warehouse.duckdb
    facts = migration.evidence("orders", place="l05")  # what the platform can check about a domain
    migration.maturity(facts)                         # {'domain ownership': 2, ...}
    db = migration.reladiff_database(con)             # a DuckDB connection, for reladiff.connect_to_table

:func:`build_warehouse` is Brightcart *before* the mesh: one DuckDB database where a central data team
loads every domain's operational data into its own wide tables. :func:`evidence` gathers facts about a
domain from its ODCS contract, datacontract-cli (lint and test) and its database, and :func:`maturity`
turns them into a level per data mesh principle with :data:`RUBRIC`. :func:`people_needed` is a toy
staffing model, central team versus mesh; its assumptions are arguments, not findings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from coursekit import contracts, data, duck, mesh

PRINCIPLES: tuple[str, ...] = ("domain ownership", "data as a product", "self-serve platform", "federated governance")
LEVELS: tuple[str, ...] = ("not started", "explore", "expand", "extract")
Facts = Mapping[str, Any]

# Each principle's levels 1-3: what must be true of a domain's facts (see evidence()) to reach it.
# Levels are cumulative: a domain is at level n only if the tests of levels 1..n all hold.
RUBRIC: dict[str, tuple[tuple[str, Callable[[Facts], bool]], ...]] = {
    "domain ownership": (
        ("the contract names an owning team", lambda f: bool(f["team"])),
        ("an accountable owner (a member with role owner), and the data in the domain's own database",
         lambda f: f["owner"] and f["own_database"]),
        ("its consumers read it from the domain, not through the central warehouse",
         lambda f: f["served_from"] == "domain"),
    ),
    "data as a product": (
        ("the contract is valid ODCS (datacontract lint)", lambda f: f["lint"]),
        ("purpose, usage and limitations described, and quality rules declared",
         lambda f: f["described"] and f["quality_rules"] > 0),
        ("the contract test passes on the live data (datacontract test)", lambda f: f["test"]),
    ),
    "self-serve platform": (
        ("an output port on a server type the platform runs (duckdb)", lambda f: f["output_ports"] > 0),
        ("the platform tests it unattended (the contract test ran, whatever it found)", lambda f: f["test_ran"]),
        ("an SLA the platform can monitor: a latency on a named column", lambda f: f["monitored_latency"]),
    ),
    "federated governance": (
        ("some columns classified", lambda f: f["classified"] > 0),
        ("every column classified", lambda f: f["classified"] == 1),
        ("every column tagged pii is classified restricted", lambda f: f["pii_restricted"]),
    ),
}


def build_warehouse(place: str | None = None) -> Path | str:
    """(Re)write the central team's warehouse from the domains' databases (:func:`coursekit.mesh.build` first).

    ``warehouse.duckdb`` holds ``dim_customer`` (customers, with their e-mail and marketing opt-in) and
    ``fct_orders``: one wide row per order, in the central team's names, mixing what four domains own
    (the order, its payment status, its parcels, the customer's segment). Returns the file.
    """
    con = duck.connect("warehouse", place=place)
    try:
        for domain in mesh.DOMAINS:
            con.execute(f"ATTACH '{duck.path(domain, place)}' AS src_{domain} (READ_ONLY)")
        con.execute(_DIM_CUSTOMER)
        con.execute(_FCT_ORDERS)
        for domain in mesh.DOMAINS:
            con.execute(f"DETACH src_{domain}")
    finally:
        con.close()
    return duck.path("warehouse", place)


_DIM_CUSTOMER = """
CREATE OR REPLACE TABLE dim_customer AS
SELECT c.customer_id, c.region AS customer_region, c.segment AS customer_segment, c.signup_date, c.email,
       coalesce(bool_or(m.consent), false) AS marketing_opt_in
FROM src_customers.customers AS c LEFT JOIN src_marketing.contacts AS m USING (customer_id)
GROUP BY ALL ORDER BY customer_id
"""

_FCT_ORDERS = """
CREATE OR REPLACE TABLE fct_orders AS
WITH pay AS (
    SELECT order_id, count(*) AS payment_attempts,
           CASE WHEN bool_or(status = 'refunded') THEN 'refunded'
                WHEN bool_or(status = 'captured') THEN 'paid' ELSE 'unpaid' END AS payment_status,
           sum(amount_cents) FILTER (WHERE status IN ('captured', 'refunded')) / 100 AS paid_amount
    FROM src_payments.payments GROUP BY order_id),
ship AS (
    SELECT order_id, count(*) AS parcels,
           CASE WHEN bool_and(status = 'delivered') THEN max(delivered_at) END AS delivered_at
    FROM src_fulfilment.shipments GROUP BY order_id)
SELECT o.order_id, o.customer_id, o.region AS customer_region, d.customer_segment, o.category, o.items,
       round(o.amount, 2)::DECIMAL(12, 2) AS gross_amount, o.placed_at, o.placed_at::DATE AS order_date,
       coalesce(p.payment_status, 'unpaid') AS payment_status, coalesce(p.payment_attempts, 0) AS payment_attempts,
       p.paid_amount::DECIMAL(12, 2) AS paid_amount, coalesce(s.parcels, 0) AS parcels, s.delivered_at
FROM src_orders.orders AS o
LEFT JOIN pay AS p USING (order_id) LEFT JOIN ship AS s USING (order_id) LEFT JOIN dim_customer AS d USING (customer_id)
ORDER BY o.order_id
"""


def evidence(domain: str, place: str | None = None, *, contract: dict[str, Any] | None = None,
             served_from: str = "warehouse") -> dict[str, Any]:
    """Facts about ``domain`` that the platform can check, for :data:`RUBRIC`.

    ``contract`` (default: the domain's shipped one) is linted and tested with datacontract-cli against
    the domain's database in ``place``; ``served_from`` says where its consumers read its data
    (``"warehouse"`` or ``"domain"``). Close every connection that writes to that database first.
    """
    document = contracts.load(domain) if contract is None else contract
    dc = contracts.data_contract(document, domain, place)
    lint, test = dc.lint(), dc.test()
    properties = [p for table in document.get("schema", []) for p in table.get("properties", [])]
    quality = [q for item in [*document.get("schema", []), *properties] for q in item.get("quality", [])]
    described = document.get("description", {})
    servers = document.get("servers", [])
    return {
        "team": document.get("team", {}).get("name"),
        "owner": any(m.get("role") == "owner" for m in document.get("team", {}).get("members", [])),
        "own_database": bool(servers) and all(s.get("database") == f"{domain}.duckdb" for s in servers
                                              if s.get("type") == "duckdb"),
        "served_from": served_from,
        "lint": lint.result == "passed",
        "described": all(described.get(k) for k in ("purpose", "usage", "limitations")),
        "quality_rules": len(quality),
        "test": test.result == "passed",
        "test_ran": test.result != "error" and len(test.checks) > 0,
        "checks": len(test.checks),
        "output_ports": sum(s.get("type") == "duckdb" for s in servers),
        "monitored_latency": any(s.get("property") == "latency" and s.get("element")
                                 for s in document.get("slaProperties", [])),
        "classified": sum(bool(p.get("classification")) for p in properties) / max(len(properties), 1),
        "pii_restricted": all(p.get("classification") == "restricted" for p in properties
                              if "pii" in p.get("tags", [])),
    }


def maturity(facts: Facts) -> dict[str, int]:
    """The level (0-3, see :data:`LEVELS`) of each principle for one domain's ``facts``."""
    levels = {}
    for principle, steps in RUBRIC.items():
        level = 0
        for _, holds in steps:
            if not holds(facts):
                break
            level += 1
        levels[principle] = level
    return levels


def reference_data() -> dict[str, pd.DataFrame]:
    """The mesh's shared reference data: the delivery regions and the currencies (ISO 4217 code and
    minor unit, the number of decimals of the currency: 2 for EUR, 0 for JPY)."""
    return {
        "regions": pd.DataFrame({"region": list(data.REGIONS)}),
        "currencies": pd.DataFrame({"currency": ["EUR", "GBP", "JPY"], "minor_unit": [2, 2, 0],
                                    "name": ["Euro", "Pound sterling", "Yen"]}),
    }


def reladiff_database(con: Any) -> Any:
    """``con`` (a DuckDB connection, e.g. from :func:`coursekit.duck.connect`) as a reladiff database.

    reladiff's own DuckDB driver opens the file itself with DuckDB's default settings (which may install
    extensions from the network), and DuckDB refuses a second connection to a file this process already
    has open with other settings; wrapping the course's connection avoids both. Closing the result closes
    ``con``.
    """
    return _reladiff_duckdb_class()(con)


@cache
def _reladiff_duckdb_class() -> type:
    from reladiff.databases import DuckDB

    class CourseDuckDB(DuckDB):  # type: ignore[misc]
        """reladiff's DuckDB driver on a connection the course made."""

        def __init__(self, connection: Any) -> None:
            self._args = {}
            self._conn = connection

    return CourseDuckDB


def people_needed(domains: int, *, work: float = 1.5, handoff: float = 0.5, overhead: float = 0.01,
                  platform: float = 4, enabling: float = 2, automation: float = 0.3, floor: float = 1.0,
                  guild: float = 0.1) -> dict[str, float]:
    """A toy staffing model (full-time people) for ``domains`` domains; every number is an assumption.

    Both organisations do ``work`` FTE of data work per domain. A central team also pays ``handoff`` FTE per
    domain for requirements and context it does not have, and loses ``overhead`` of a person per pair of
    colleagues (communication paths, n(n-1)/2), so past some size it cannot grow its output at all (``inf``).
    A mesh pays a ``platform`` team and an ``enabling`` team, then per domain the work the platform does not
    automate (``automation`` of it), at least ``floor`` FTE of data skills, and ``guild`` FTE of governance.
    """
    demand = domains * (work + handoff)
    best = 1 / overhead + 0.5                           # team size where n - overhead*n(n-1)/2 peaks
    if best - overhead * best * (best - 1) / 2 < demand:
        central = math.inf
    else:                                               # smallest n with n - overhead*n(n-1)/2 >= demand
        a, b = overhead / 2, -(1 + overhead / 2)
        central = math.ceil((-b - math.sqrt(b * b - 4 * a * demand)) / (2 * a) - 1e-9)
    mesh_people = platform + enabling + domains * (max(floor, work * (1 - automation)) + guild)
    return {"central": float(central), "mesh": mesh_people}
