"""Brightcart's data contracts (Open Data Contract Standard v3.2.0), one per domain.

::

    from coursekit import contracts, mesh
    mesh.build(place="l03")                         # the domains' databases (lesson 03's copy)
    contracts.text("orders")                        # the contract as its team wrote it (YAML)
    dc = contracts.data_contract("orders", place="l03")   # a datacontract-cli DataContract
    dc.lint().result, dc.test().result              # valid against ODCS? true of the data?

The YAML files live in ``coursekit/contracts/<domain>.odcs.yaml``. Their ``duckdb`` server names
the database file only (``orders.duckdb``); :func:`resolved` points it at the learner's own
database (:func:`coursekit.duck.path`), so the same contract is tested against whichever
database the course is configured to use. The marketing contract is as its team left it: it
classifies nothing, which lesson 04's global policies catch.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from coursekit import duck, mesh


def text(domain: str) -> str:
    """The contract of ``domain`` exactly as committed."""
    if domain not in mesh.DOMAINS:
        raise KeyError(f"{domain!r} is not a Brightcart domain; the domains are {', '.join(mesh.DOMAINS)}")
    return resources.files("coursekit").joinpath(f"contracts/{domain}.odcs.yaml").read_text(encoding="utf-8")


def load(domain: str) -> dict[str, Any]:
    """The contract of ``domain`` as a dict (parsed YAML)."""
    return yaml.safe_load(text(domain))


def resolved(contract: dict[str, Any] | str, domain: str | None = None, place: str | None = None) -> dict[str, Any]:
    """A copy of ``contract`` (a dict, or a domain name) whose DuckDB servers point at the course's
    database of ``domain`` (default: the contract's ``domain``) in ``place`` (see :func:`mesh.build`)."""
    document = load(contract) if isinstance(contract, str) else yaml.safe_load(yaml.safe_dump(contract))
    owner = domain or document.get("domain")
    for server in document.get("servers", []):
        if server.get("type") == "duckdb":
            server["database"] = str(duck.path(owner, place))
    return document


def data_contract(contract: dict[str, Any] | str, domain: str | None = None, place: str | None = None) -> Any:
    """A ``datacontract.data_contract.DataContract`` for ``contract`` (see :func:`resolved`)."""
    from datacontract.data_contract import DataContract

    return DataContract(data_contract_str=yaml.safe_dump(resolved(contract, domain, place), sort_keys=False))


def all_contracts() -> dict[str, dict[str, Any]]:
    """Every domain's contract: ``{domain: dict}``."""
    return {domain: load(domain) for domain in mesh.DOMAINS}
