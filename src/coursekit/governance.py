"""Brightcart's federated governance: the global policies (Rego), the gate CI runs, and masking.

::

    from coursekit import contracts, governance
    governance.sources()["classification"]              # the Rego file, as the federation agreed it
    governance.check(contracts.load("marketing"))       # [{'policy': ..., 'where': ..., 'msg': ...}, ...]
    governance.report()                                 # every domain's contract against every policy
    governance.check(new, previous=old)                 # ... and schema compatibility with the published one

    python -m coursekit.governance check new.odcs.yaml --previous old.odcs.yaml   # exit 1 on violations

The policies live in ``coursekit/policies/*.rego`` (Rego v1), one package each: ``brightcart.<policy>``
with a ``deny`` rule, a set of ``{"where", "msg"}`` objects. ``classification`` and ``naming`` take
one ODCS v3 contract as input; ``compatibility`` takes ``{"old": published, "new": proposed}``.
They run in process (rego-cpp, through :mod:`coursekit.policy`) or on an OPA server
(``COURSEKIT_OPA_URL``). :data:`MASKING` holds the platform's masking methods, which
:func:`install_masking` creates as DuckDB macros ``mask_<method>(value)``.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import sys
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from coursekit import policy

POLICIES = ("classification", "naming", "compatibility")
PER_CONTRACT = ("classification", "naming")
LEVELS = ("public", "internal", "confidential", "restricted")

# The platform's masking methods: method -> DuckDB expression of ``value`` (see install_masking).
# classification.rego lists the same names in ``masking_methods``; tests/test_governance.py checks it.
MASKING: dict[str, str] = {
    "redact": "CASE WHEN value IS NULL THEN NULL ELSE '***' END",
    "hash": "sha256({salt} || CAST(value AS VARCHAR))",
    "email_partial": r"regexp_replace(value, '^(.)[^@]*', '\1***')",
    "last_digits": "'***' || right(CAST(value AS VARCHAR), 3)",
    "postcode_area": "split_part(value, ' ', 1)",
    "decade": "(value // 10) * 10",
}
DEFAULT_SALT = "brightcart-course-salt"


def sources() -> dict[str, str]:
    """The global policies' Rego sources, ``{policy: text}``, as shipped in ``coursekit/policies``."""
    folder = resources.files("coursekit").joinpath("policies")
    return {name: folder.joinpath(f"{name}.rego").read_text(encoding="utf-8") for name in POLICIES}


def engine(extra: dict[str, str] | None = None) -> policy.Engine:
    """An engine holding the global policies (and ``extra`` modules, ``{name: source}``)."""
    return policy.Engine({**sources(), **(extra or {})})


def query(name: str) -> str:
    """The query of a policy's violations: ``data.brightcart.<name>.deny``."""
    return f"data.brightcart.{name}.deny"


def plain(document: Any) -> Any:
    """``document`` as JSON data, which is what a policy engine reads: YAML's unquoted dates and times
    (``contractCreatedTs: 2026-03-01T09:30:00Z``, ``examples: [2026-03-02]``) become ISO 8601 strings."""
    def iso(value: Any) -> str:
        if isinstance(value, (datetime.date, datetime.time)):
            return value.isoformat()
        raise TypeError(f"a contract holds {type(value).__name__} {value!r}, which JSON cannot represent")

    return json.loads(json.dumps(document, default=iso))


def check(contract: dict[str, Any], previous: dict[str, Any] | None = None, *,
          using: policy.Engine | None = None) -> list[dict[str, str]]:
    """Every violation of ``contract``, ``[{'policy', 'where', 'msg'}]`` (empty: it complies).

    ``previous``: the published version, for the compatibility policy (skipped without it).
    """
    rego = using or engine()
    contract = plain(contract)
    previous = None if previous is None else plain(previous)
    found: list[dict[str, str]] = []
    for name in PER_CONTRACT:
        found += [{"policy": name, **v} for v in rego.query(query(name), contract) or []]
    if previous is not None:
        changes = rego.query(query("compatibility"), {"old": previous, "new": contract}) or []
        found += [{"policy": "compatibility", **v} for v in changes]
    return found


def report(contracts: dict[str, dict[str, Any]] | None = None, *,
           using: policy.Engine | None = None) -> list[dict[str, str]]:
    """The violations of every domain's contract (default: :func:`coursekit.contracts.all_contracts`),
    ``[{'domain', 'policy', 'where', 'msg'}]``."""
    if contracts is None:
        from coursekit import contracts as shipped

        contracts = shipped.all_contracts()
    rego = using or engine()
    return [{"domain": domain, **v} for domain, contract in contracts.items() for v in check(contract, using=rego)]


def format_violations(violations: Iterable[dict[str, str]]) -> str:
    """One line per violation, as the gate prints them."""
    return "\n".join(f"  [{v['policy']}] {v['where']} {v['msg']}" for v in violations)


def gate(contract: dict[str, Any], previous: dict[str, Any] | None = None, *, out: Any = None) -> int:
    """What a data product's CI runs: print the violations and return the exit code (0: it passes)."""
    out = out or sys.stdout
    found = check(contract, previous)
    name = f"{contract.get('id', '(no id)')} {contract.get('version', '(no version)')}"
    if not found:
        print(f"PASS {name}: complies with every global policy", file=out)
        return 0
    print(f"FAIL {name}: {len(found)} violation(s) of Brightcart's global policies", file=out)
    print(format_violations(found), file=out)
    return 1


def load(path: str | Path) -> dict[str, Any]:
    """A contract from a YAML file."""
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path} does not hold a data contract (a YAML mapping)")
    return document


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m coursekit.governance check NEW [--previous OLD]``: the gate as a CI step."""
    parser = argparse.ArgumentParser(prog="python -m coursekit.governance",
                                     description="Check data contracts against Brightcart's global policies.")
    commands = parser.add_subparsers(dest="command", required=True)
    checking = commands.add_parser("check", help="check a contract (exit 1 on any violation)")
    checking.add_argument("contract", help="the proposed contract (ODCS YAML)")
    checking.add_argument("--previous", help="the published contract it replaces, for schema compatibility")
    args = parser.parse_args(argv)
    try:
        contract = load(args.contract)
        previous = load(args.previous) if args.previous else None
    except (OSError, ValueError, yaml.YAMLError) as error:
        print(f"ERROR {error}", file=sys.stderr)
        return 2
    return gate(contract, previous)


# -- reading and editing contracts ---------------------------------------------------------------
def columns(contract: dict[str, Any], table: str) -> list[dict[str, Any]]:
    """The properties (columns) of ``table`` in ``contract``."""
    for element in contract.get("schema", []):
        if element.get("name") == table:
            return list(element.get("properties", []))
    raise KeyError(f"the contract has no table {table!r}; it has {[e.get('name') for e in contract.get('schema', [])]}")


def column(contract: dict[str, Any], table: str, name: str) -> dict[str, Any]:
    """The property ``name`` of ``table``: the dict itself, so that editing it edits the contract."""
    for element in contract.get("schema", []):
        if element.get("name") == table:
            for prop in element.get("properties", []):
                if prop.get("name") == name:
                    return prop
    raise KeyError(f"{table}.{name} is not in the contract")


def masking_of(prop: dict[str, Any]) -> str | None:
    """The masking method a column declares (its custom property ``masking``), or ``None``."""
    for custom in prop.get("customProperties") or []:
        if custom.get("property") == "masking":
            return str(custom.get("value"))
    return None


def with_masking(prop: dict[str, Any], method: str) -> dict[str, Any]:
    """Declare ``method`` as ``prop``'s masking (in place, replacing any other); return ``prop``."""
    others = [c for c in prop.get("customProperties") or [] if c.get("property") != "masking"]
    prop["customProperties"] = [*others, {"property": "masking", "value": method}]
    return prop


def copy_of(contract: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a contract, to edit without touching the original."""
    return copy.deepcopy(contract)


# -- masking in DuckDB -------------------------------------------------------------------------------
def install_masking(con: Any, salt: str = DEFAULT_SALT) -> list[str]:
    """Create the platform's masking macros ``mask_<method>(value)`` on ``con``; return their names.

    ``hash`` is a salted SHA-256, the same for equal values (so masked columns still join). In
    production the salt is a secret from a vault, and a keyed hash (HMAC) is better; here it is a
    constant, so anyone with the course package can recompute it.
    """
    literal = salt.replace("'", "''")
    created = []
    for method, expression in MASKING.items():
        body = expression.replace("{salt}", f"'{literal}:'")
        con.execute(f"CREATE OR REPLACE TEMP MACRO mask_{method}(value) AS {body}")
        created.append(f"mask_{method}")
    return created


if __name__ == "__main__":
    sys.exit(main())
