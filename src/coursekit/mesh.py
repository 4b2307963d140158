"""Brightcart's data mesh: its five domains, who owns them, and each domain's own database.

::

    from coursekit import mesh
    mesh.DOMAINS["payments"].team                # 'Payments'
    paths = mesh.build(seed=7, place="l02")      # {'orders': .../l02/orders.duckdb, ...}
    con = mesh.connect("payments", place="l02", read_only=True)

:func:`build` writes each domain's operational data, as that domain's team models it, into the
domain's own DuckDB database (:mod:`coursekit.duck`), from the seeded generators of
:mod:`coursekit.data`: the same seed gives the same rows everywhere. Nothing is shared between
the databases but identifiers (``order_id``, ``customer_id``), as in a mesh.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coursekit import data, duck


@dataclass(frozen=True)
class Domain:
    """One business domain of Brightcart and the team that owns its data."""

    name: str
    team: str
    owns: str
    tables: tuple[str, ...]


DOMAINS: dict[str, Domain] = {d.name: d for d in (
    Domain("orders", "Checkout", "baskets checked out by customers, their lines and amounts", ("orders",)),
    Domain("payments", "Payments", "payment attempts, captures and refunds (amounts in cents)", ("payments",)),
    Domain("fulfilment", "Logistics", "parcels picked in warehouses and delivered by couriers", ("shipments",)),
    Domain("customers", "Customer Care", "accounts and personal data of registered customers", ("customers",)),
    Domain("marketing", "Growth", "contacts marketing may address, and the clickstream", ("contacts", "page_views")),
)}


def tables(seed: int = 7, n_orders: int = 500, n_customers: int = 200) -> dict[str, dict[str, Any]]:
    """Each domain's tables as DataFrames: ``{domain: {table: frame}}`` (nothing written)."""
    return {
        "orders": {"orders": data.orders(n_orders, seed, n_customers=n_customers)},
        "payments": {"payments": data.payments(n_orders, seed, n_customers=n_customers)},
        "fulfilment": {"shipments": data.shipments(n_orders, seed, n_customers=n_customers)},
        "customers": {"customers": data.customer_profiles(n_customers, seed)},
        "marketing": {"contacts": data.marketing_contacts(n_customers, seed),
                      "page_views": data.page_views(4 * n_orders, seed, n_customers=n_customers)},
    }


def build(seed: int = 7, n_orders: int = 500, n_customers: int = 200, *,
          place: str | None = None) -> dict[str, Path | str]:
    """(Re)write every domain's database from the generators; return ``{domain: database file}``.

    Each table is replaced, so running it twice leaves the same data (any leftovers are gone).
    ``place`` (e.g. ``"l02"``): a lesson's own copy of the mesh (:func:`coursekit.duck.path`).
    """
    written: dict[str, Path | str] = {}
    for domain, frames in tables(seed, n_orders, n_customers).items():
        con = duck.connect(domain, place=place)
        try:
            for table, frame in frames.items():
                con.register("frame_view", frame)
                # table names come from tables() above, never from input
                con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM frame_view")  # noqa: S608
                con.unregister("frame_view")
        finally:
            con.close()
        written[domain] = duck.path(domain, place)
    return written


def connect(domain: str, *, place: str | None = None, read_only: bool = False) -> Any:
    """Open ``domain``'s database (see :func:`build`)."""
    if domain not in DOMAINS:
        raise KeyError(f"{domain!r} is not a Brightcart domain; the domains are {', '.join(DOMAINS)}")
    return duck.connect(domain, place=place, read_only=read_only)
