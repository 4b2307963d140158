"""Brightcart's self-serve data platform: what the platform team gives every domain that publishes data.

::

    from coursekit import contracts, products
    products.descriptor(contracts.load("orders"))               # the product's descriptor (ODPS v1.0.0 shape)
    files = products.export_parquet("orders", place="l03")      # a second output port: Parquet files
    two_ports = products.with_parquet_port(contracts.resolved("orders", place="l03"), files["orders"].parent)
    products.port_test(two_ports, "parquet")                    # datacontract-cli test of that port
    products.physical_type_mismatches(contract, con)            # declared physicalType vs the DuckDB table
    products.slo_report(contracts.load("orders"), con, as_of)   # latency SLOs measured on the data
    products.semver_bump(v1, v2)                                # "major", "minor" or "patch"
    products.publish_catalog({"orders": ...}, folder)           # an HTML catalog (datacontract-cli's pages)
    made = products.scaffold("returns", frame, team=..., ...)   # a new domain's product in one call

Everything runs offline: datacontract-cli lints against the ODCS JSON schema it bundles, and tests
DuckDB databases and local files. Products' files live under ``<state>/products/<place>/``
(:func:`folder`); their databases are :mod:`coursekit.duck`'s.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import runpy
import string
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from coursekit import duck, mesh
from coursekit.config import engine_dir

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]*(\([0-9, ]+\))?$")   # BIGINT, TIMESTAMP WITH TIME ZONE, DECIMAL(10,2)
# datacontract-cli reads a file port through DuckDB and casts its columns to the contract's types;
# in 1.2.8 its type mapper knows `timestamp`/`timestamp_tz` but not DuckDB's own spellings
FILE_PORT_TYPES = {"TIMESTAMP WITH TIME ZONE": "timestamp_tz", "TIMESTAMPTZ": "timestamp_tz"}
_FILE_SERVERS = {"local", "s3", "gcs", "azure"}
_UNITS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60, "minutes": 60,
          "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400}
_LOGICAL = (("TIMESTAMP", "timestamp"), ("DATE", "date"), ("TIME", "time"), ("BOOLEAN", "boolean"),
            ("VARCHAR", "string"), ("DOUBLE", "number"), ("FLOAT", "number"), ("DECIMAL", "number"),
            ("HUGEINT", "integer"), ("BIGINT", "integer"), ("INTEGER", "integer"), ("SMALLINT", "integer"),
            ("TINYINT", "integer"), ("UBIGINT", "integer"), ("UINTEGER", "integer"))


def _name(value: str, what: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{what} {value!r}: use lower-case letters, digits and _ (e.g. 'returns')")
    return value


def folder(place: str | None = None) -> Path:
    """Where the platform keeps products' files (ports, catalog, scaffolds): ``<state>/products[/place]``."""
    root = engine_dir("products")
    if place:
        root = root / _name(place, "place")
    root.mkdir(parents=True, exist_ok=True)
    return root


def sandbox(domain: str, name: str, place: str | None = None) -> Any:
    """A writable copy of ``domain``'s database, as database ``name`` (replaced if it exists), for
    experiments that must not touch the product: returns the connection (close it, or use ``with``)."""
    source = duck.path(domain, place)
    con = duck.connect(_name(name, "database"), place=place)
    try:
        con.execute(f"ATTACH '{source}' AS source (READ_ONLY)")
        for table in mesh.DOMAINS[domain].tables:
            con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM source.{table}")  # noqa: S608
        con.execute("DETACH source")
    except Exception:
        con.close()
        raise
    return con


def odcs(contract: Mapping[str, Any]) -> Any:
    """``contract`` parsed into datacontract-cli's ODCS model (no lint: JSON-schema validation is
    :meth:`DataContract.lint`'s job, and the slow part)."""
    from open_data_contract_standard.model import OpenDataContractStandard

    return OpenDataContractStandard.model_validate(json.loads(json.dumps(dict(contract), default=str)))


def run_checks(contract: Mapping[str, Any], *, server: str | None = None, rules: set[str] | None = None,
               untrusted: bool = False) -> Any:
    """datacontract-cli's ``test`` of a contract you have linted already (it skips the lint), on
    ``server`` (default: the first); ``rules``: only the quality rules with these ``id``s. ``untrusted``:
    someone else wrote it (datacontract-cli's ``untrusted_contract``: no environment variables, no
    references fetched); :mod:`coursekit.contractcheck` also confines its SQL."""
    from datacontract.data_contract import DataContract

    return DataContract(data_contract=odcs(contract), server=server, quality_ids=rules, untrusted_contract=untrusted,
                        inline_references=not untrusted).test()


def failures(run: Any) -> list[str]:
    """``"<result> <check>: <reason>"`` for every check of a datacontract-cli run that did not pass
    (``failed``, ``warning``, ``error``, or ``not run`` when the run stopped before it)."""
    return [f"{check.result.value if check.result else 'not run'} {check.name}: {check.reason}"
            for check in run.checks if check.result is None or check.result.value != "passed"]


def lint(contract: Mapping[str, Any], *, untrusted: bool = False) -> list[str]:
    """What datacontract-cli's ``lint`` (the ODCS JSON schema, and its own checks) finds wrong with
    ``contract``; empty when it is valid. ``untrusted``: fetch none of the references it names."""
    from datacontract.data_contract import DataContract

    text = yaml.safe_dump(json.loads(json.dumps(dict(contract), default=str)), sort_keys=False)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the errors it returns
        run = DataContract(data_contract_str=text, untrusted_contract=untrusted, inline_references=not untrusted).lint()
    return [] if run.result.value == "passed" else failures(run) or [f"lint {run.result.value}"]


def test_frames(contract: Mapping[str, Any], tables: Mapping[str, Any], *, untrusted: bool = False) -> Any:
    """datacontract-cli's ``test`` of ``contract`` on data frames: ``tables`` (``{table name: frame}``) are
    written to a fresh DuckDB file, which the contract's first ``duckdb`` server is pointed at (the
    contract itself is not changed). Lint it first: this skips the lint. Returns the run.
    ``untrusted``: as :func:`run_checks`."""
    import duckdb

    document = json.loads(json.dumps(dict(contract), default=str))
    server = next((s for s in document.get("servers") or [] if isinstance(s, dict) and s.get("type") == "duckdb"),
                  None)
    if server is None:
        raise ValueError("the contract has no server of type duckdb to test the data on: add one "
                         "(server: local, type: duckdb, database: <file>.duckdb, schema: main)")
    with tempfile.TemporaryDirectory(prefix="coursekit-contract-") as folder:
        database = Path(folder) / "test.duckdb"
        con = duckdb.connect(str(database), config={"autoinstall_known_extensions": False})
        try:
            for name, frame in tables.items():
                con.register("frame", frame)
                con.execute(f'CREATE TABLE "{_name(name, "table")}" AS SELECT * FROM frame')  # noqa: S608 - a checked identifier
                con.unregister("frame")
        finally:
            con.close()
        # this server alone: another (a `local` one with a path of its own, say) would be what is tested
        server["database"], server["schema"] = str(database), "main"
        document["servers"] = [server]
        return run_checks(document, server=server.get("server"), untrusted=untrusted)


# ---- the descriptor and the output ports ---------------------------------------------------------

def product_name(contract: Mapping[str, Any]) -> str:
    """The name of the data product ``contract`` serves: its ``dataProduct`` (deprecated since ODCS
    v3.1.0, which points from the product's descriptor to the contract instead), else its ``domain``."""
    return str(contract.get("dataProduct") or contract["domain"])


def descriptor(contract: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The data product's descriptor, in the shape of Bitol's Open Data Product Standard v1.0.0.

    One output port per server of ``contract`` (each serves the same contract); ``inputs`` are the
    contracts of the products it reads (its input ports).
    """
    kinds = {"duckdb": "tables", "local": "files"}
    name = product_name(contract)
    ports = [{"name": f"{name}-{server['server']}", "description": server.get("description",
              f"{server['type']} server {server['server']}"), "type": kinds.get(server["type"], server["type"]),
              "version": contract["version"], "contractId": contract["id"]}
             for server in contract.get("servers", [])]
    product: dict[str, Any] = {
        "apiVersion": "v1.0.0", "kind": "DataProduct", "id": f"urn:brightcart:product:{name}",
        "name": contract["name"], "version": contract["version"], "status": contract["status"],
        "domain": contract["domain"], "tenant": contract.get("tenant", "brightcart"),
        "description": dict(contract["description"]), "team": copy.deepcopy(contract["team"]),
    }
    if inputs:
        product["inputPorts"] = [{"name": product_name(source), "version": source["version"],
                                  "contractId": source["id"]} for source in inputs]
    product["outputPorts"] = ports
    return product


def export_parquet(domain: str, place: str | None = None, directory: Path | None = None) -> dict[str, Path]:
    """Write each table of ``domain``'s database to ``<directory>/<table>.parquet`` (default:
    ``folder(place)/<domain>/``); return ``{table: file}``. The files are a copy, as of now."""
    target = Path(directory) if directory is not None else folder(place) / _name(domain, "domain")
    target.mkdir(parents=True, exist_ok=True)
    written = {}
    con = mesh.connect(domain, place=place, read_only=True)
    try:
        for table in mesh.DOMAINS[domain].tables:
            file = target / f"{table}.parquet"
            # table names come from mesh.DOMAINS, the path from this platform
            con.execute(f"COPY {table} TO '{file}' (FORMAT parquet)")
            written[table] = file
    finally:
        con.close()
    return written


def with_parquet_port(contract: Mapping[str, Any], directory: Path, name: str = "parquet") -> dict[str, Any]:
    """A copy of ``contract`` with a second server: the Parquet files in ``directory``, one per
    schema object (``{model}.parquet``), as datacontract-cli 1.2.8 reads a ``type: local`` server."""
    document = copy.deepcopy(dict(contract))
    servers = [s for s in document.get("servers", []) if s.get("server") != name]
    servers.append({"server": name, "type": "local", "format": "parquet", "environment": "dev",
                    "path": str(Path(directory) / "{model}.parquet"),
                    "description": "The same tables as Parquet files, for Spark, pandas and ML pipelines."})
    document["servers"] = servers
    return document


def for_server(contract: Mapping[str, Any], server: str) -> dict[str, Any]:
    """``contract`` as datacontract-cli 1.2.8 can test it on ``server``.

    For a file server (``local``, ``s3``, …) it casts the files' columns to the contract's types, and
    its type mapper does not know DuckDB's spelling ``TIMESTAMP WITH TIME ZONE`` (it produces an
    invalid cast and the run errors). ODCS has one ``physicalType`` per property, not one per port,
    so the platform rewrites those to ``timestamp_tz`` for the file port's test only; the published
    contract is unchanged. Drop this when the tool maps DuckDB's spellings.
    """
    document = copy.deepcopy(dict(contract))
    chosen = next((s for s in document.get("servers", []) if s.get("server") == server), None)
    if chosen is None:
        names = [s.get("server") for s in document.get("servers", [])]
        raise KeyError(f"the contract has no server {server!r}; it has {names}")
    if chosen.get("type") in _FILE_SERVERS:
        for schema in document.get("schema", []):
            for prop in schema.get("properties", []):
                prop["physicalType"] = FILE_PORT_TYPES.get(str(prop.get("physicalType", "")).upper(),
                                                           prop.get("physicalType"))
                if prop["physicalType"] is None:
                    del prop["physicalType"]
    return document


def port_test(contract: Mapping[str, Any], server: str) -> Any:
    """datacontract-cli's ``test`` of ``contract`` (linted already) against one of its servers, an
    output port, with the file-port workaround of :func:`for_server`."""
    return run_checks(for_server(contract, server), server=server)


def physical_type_mismatches(contract: Mapping[str, Any], con: Any = None) -> list[str]:
    """Each property whose declared ``physicalType`` is not its column's type in the DuckDB database
    ``con`` reads (default: each ``duckdb`` server's database, opened read-only), both spelled as
    DuckDB spells them (``TIMESTAMPTZ`` is ``TIMESTAMP WITH TIME ZONE``).

    datacontract-cli 1.2.8 checks a declared ``physicalType`` only on warehouses whose catalog it reads
    (Postgres, Snowflake, BigQuery, Databricks, ...); on DuckDB and files it checks the ``logicalType``
    alone, so ``physicalType: VARCHAR`` on a BIGINT column passes its test. The platform checks here.
    A missing table or column is not reported: that is the tool's ``field_is_present`` check.
    """
    import duckdb

    if con is None:
        problems = []
        for server in contract.get("servers", []):
            if server.get("type") == "duckdb":
                with duckdb.connect(str(server["database"]), read_only=True,
                                    config={"autoinstall_known_extensions": False}) as own:
                    problems += physical_type_mismatches(contract, own)
        return problems
    problems = []
    for schema in contract.get("schema", []):
        table = schema.get("physicalName") or schema["name"]
        actual = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                  "WHERE table_catalog = current_database() AND table_name = ?",
                                  [table]).fetchall())
        for prop in schema.get("properties", []):
            declared, column = prop.get("physicalType"), prop.get("physicalName") or prop["name"]
            if declared is None or column not in actual:
                continue
            if not _TYPE_NAME.match(str(declared)):
                problems.append(f"{table}.{column}: {declared!r} is not a type name")
                continue
            try:  # DuckDB's canonical spelling of the declared type (the pattern above keeps it a type name)
                canonical = con.execute(f"SELECT typeof(CAST(NULL AS {declared}))").fetchone()[0]
            except duckdb.Error:
                problems.append(f"{table}.{column}: DuckDB has no type {declared!r}")
                continue
            if canonical != actual[column]:
                problems.append(f"{table}.{column} is declared {declared} but the column is {actual[column]}")
    return problems


def physical_type_problems(contract: Mapping[str, Any], tables: Mapping[str, Any]) -> list[str]:
    """:func:`physical_type_mismatches` of ``contract`` on data frames (``{table: frame}``, loaded into an
    in-memory DuckDB as DuckDB types them), and each property of those tables that declares no
    ``physicalType`` at all."""
    import duckdb

    missing = [f"{schema.get('name')}.{prop.get('name')} declares no physicalType"
               for schema in contract.get("schema") or [] if schema.get("name") in tables
               for prop in schema.get("properties") or [] if isinstance(prop, dict) and not prop.get("physicalType")]
    with duckdb.connect(config={"autoinstall_known_extensions": False}) as con:
        for name, frame in tables.items():
            con.register("frame", frame)
            con.execute(f'CREATE TABLE "{_name(name, "table")}" AS SELECT * FROM frame')  # noqa: S608 - checked name
            con.unregister("frame")
        return missing + physical_type_mismatches(contract, con)


# ---- service levels ----------------------------------------------------------------------------------

def _duration(value: Any, unit: str | None) -> timedelta:
    seconds = _UNITS.get(str(unit or "d").strip().lower())
    if seconds is None or not isinstance(value, int | float):
        raise ValueError(f"cannot read the duration {value!r} {unit!r}: give a number and a unit (min, h, d)")
    return timedelta(seconds=value * seconds)


def latency_objectives(contract: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The contract's ``latency`` SLAs (ODCS prefers it to ``freshness``): one row each, with the
    ``table`` and ``column`` its ``element`` names (``None`` when it names none) and the ``objective``."""
    rows = []
    for sla in contract.get("slaProperties", []):
        if str(sla.get("property", "")).lower() not in ("latency", "ly", "freshness"):
            continue
        element = sla.get("element")
        table, column = element.split(".", 1) if element and element.count(".") == 1 else (None, None)
        rows.append({"product": product_name(contract), "element": element, "table": table, "column": column,
                     "objective": _duration(sla.get("value"), sla.get("unit"))})
    return rows


def freshness(con: Any, table: str, column: str, as_of: datetime) -> timedelta | None:
    """How old the newest row of ``table`` was at ``as_of``: ``as_of - max(column)``, over the rows
    that existed then (``column <= as_of``). ``None`` if there were none."""
    _name(table, "table")
    _name(column, "column")
    newest = con.execute(f'SELECT max("{column}") FROM "{table}" WHERE "{column}" <= ?', [as_of]).fetchone()[0]  # noqa: S608
    return None if newest is None else as_of - newest


def slo_report(contract: Mapping[str, Any], con: Any, as_of: datetime) -> list[dict[str, Any]]:
    """Each latency SLA of ``contract`` measured on the data ``con`` reads, as of ``as_of``:
    ``measured`` (the newest row's age) and ``met``; an SLA without an element cannot be measured."""
    rows = []
    for row in latency_objectives(contract):
        measured = freshness(con, row["table"], row["column"], as_of) if row["table"] else None
        rows.append({**row, "as_of": as_of, "measured": measured,
                     "met": None if measured is None else measured <= row["objective"]})
    return rows


# ---- contract versions --------------------------------------------------------------------------------

def breaking(v1: Mapping[str, Any], v2: Mapping[str, Any], perspective: str = "consumer") -> Any:
    """datacontract-cli's compatibility check of ``v2`` against ``v1`` (``DataContract.breaking``),
    from the ``consumer``'s or the ``producer``'s perspective. Lint both first: this skips the lint."""
    from datacontract.data_contract import DataContract

    return DataContract(data_contract=odcs(v1)).breaking(DataContract(data_contract=odcs(v2)),
                                                           perspective=perspective)


def semver_bump(v1: Mapping[str, Any], v2: Mapping[str, Any]) -> str:
    """The semantic-version bump ``v2`` needs, as far as the tool can tell: ``major`` when it breaks
    v1's consumers, ``minor`` when it adds schema (objects or properties), ``patch`` otherwise.
    A change of meaning with the same names and types (a description) reads as a patch: review it."""
    result = breaking(v1, v2)
    if result.is_breaking:
        return "major"
    added = {"schema-added-or-removed", "property-added-or-removed"}
    if any(e.rule_id in added and e.change_type.value == "added" for e in result.entries):
        return "minor"
    return "patch"


# ---- the catalog ---------------------------------------------------------------------------------------

def html_pages(contracts: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """datacontract-cli 1.2.8's HTML page of each contract, as ``export html`` renders it.

    ``export html`` builds a new template environment per call and so compiles its ~100 templates
    again for every contract (about 0.5 s each); this renders the same template, with the same
    arguments, from one environment. Drop it when the tool caches its templates.
    """
    from datetime import UTC

    import jinja_partials
    from datacontract.export.html_exporter import get_version
    from datacontract.export.mermaid_exporter import to_mermaid
    from jinja2 import Environment, PackageLoader, select_autoescape

    loader = PackageLoader("datacontract", "templates")
    env = Environment(loader=loader, autoescape=select_autoescape(enabled_extensions=("html", "htm", "xml"),
                                                                   default_for_string=True))
    jinja_partials.register_environment(env, markup=True)
    template = env.get_template("datacontract_odcs.html")
    style, _, _ = loader.get_source(env, "style/output.css")
    when = datetime.now(UTC).strftime("%d %b %Y %H:%M:%S UTC")
    pages = {}
    for name, contract in contracts.items():
        model = odcs(contract)
        pages[name] = template.render(datacontract=model, quality_specification=None, style=style,
                                      datacontract_yaml=model.to_yaml(), formatted_date=when,
                                      datacontract_cli_version=get_version(), mermaid_diagram=to_mermaid(model))
    return pages


def publish_catalog(products: Mapping[str, Mapping[str, Any]], directory: Path) -> Path:
    """Publish each product's contract to the catalog in ``directory``; return its ``index.html``.

    As ``datacontract catalog`` does: the contract's YAML, datacontract-cli's HTML page for it
    (:func:`html_pages`) and an index of every product published there. A contract that does not
    lint is refused (ValueError); one already published unchanged is not linted and rendered again.
    The pages are plain files with their styles inline: open ``index.html`` in a browser, online or
    not. Only a product page's entity diagram needs the network (it loads Mermaid from jsDelivr and
    Panzoom from unpkg); offline it shows the diagram's Mermaid source instead.
    """
    from datacontract.catalog.catalog import DataContractView, create_index_html
    from datacontract.data_contract import DataContract

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    changed = {}
    for name, contract in products.items():
        text = yaml.safe_dump(dict(contract), sort_keys=False)
        source, page = target / f"{_name(name, 'product')}.odcs.yaml", target / f"{name}.html"
        if page.exists() and source.exists() and source.read_text(encoding="utf-8") == text:
            continue
        run = DataContract(data_contract_str=text).lint()
        if run.result.value != "passed":
            raise ValueError(f"{name}'s contract is not valid ODCS, so it is not published: {failures(run)}")
        changed[name] = (contract, text)
    pages = html_pages({name: contract for name, (contract, _) in changed.items()}) if changed else {}
    for name, (_, text) in changed.items():
        (target / f"{name}.html").write_text(pages[name], encoding="utf-8")
        (target / f"{name}.odcs.yaml").write_text(text, encoding="utf-8")
    views = [DataContractView(html_filepath=source.with_name(source.name.removesuffix(".odcs.yaml") + ".html"),
                              html_link=Path(source.name.removesuffix(".odcs.yaml") + ".html"),
                              odcs=odcs(yaml.safe_load(source.read_text(encoding="utf-8"))))
             for source in sorted(target.glob("*.odcs.yaml"))]
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Created ..."
        create_index_html(views, target)
    return target / "index.html"


# ---- the scaffold ------------------------------------------------------------------------------------

@dataclass
class Scaffolded:
    """What :func:`scaffold` made: the product's folder, contract, database, and its tests' outcomes."""

    domain: str
    folder: Path
    contract_file: Path
    tests_file: Path
    database: Path | str
    contract: dict[str, Any]
    tests: dict[str, str] = field(default_factory=dict)   # test name -> "passed" or what failed

    @property
    def passed(self) -> bool:
        """True when every generated test passed."""
        return bool(self.tests) and all(outcome == "passed" for outcome in self.tests.values())


def _logical_type(duck_type: str) -> str:
    for prefix, logical in _LOGICAL:
        if duck_type.upper().startswith(prefix):
            return logical
    raise ValueError(f"the platform has no ODCS logical type for DuckDB type {duck_type!r} yet")


def _template(name: str) -> string.Template:
    return string.Template(resources.files("coursekit").joinpath(f"templates/{name}").read_text(encoding="utf-8"))


def scaffold(domain: str, frame: Any, *, team: str, owner: str, primary_key: str, event_time: str,
             latency: tuple[float, str], purpose: str, usage: str, limitations: str, grain: str,
             descriptions: Mapping[str, str], inputs: Sequence[Mapping[str, Any]] = (),
             place: str | None = None) -> Scaffolded:
    """One call that gives a new domain a data product: its table, contract, descriptor and tests.

    Writes ``frame`` as table ``<domain>`` of the domain's own DuckDB database, fills the platform's
    ODCS template (ownership, purpose, a latency SLA on ``event_time``, a row-count rule, a server),
    derives the schema from the table (``required`` where the data has no nulls; ``primary_key``
    required and unique) with the team's ``descriptions``, writes the contract, its ODPS descriptor
    (``inputs``: the contracts of the products it is made from) and the product's pytest file into
    ``folder(place)/<domain>/``, then runs those tests (lint against ODCS, test against the data).
    Run again, it replaces what it made.
    """
    _name(domain, "domain")
    columns = list(frame.columns)
    for column in (primary_key, event_time):
        if column not in columns:
            raise ValueError(f"{column!r} is not a column of the frame; its columns are {columns}")
    missing = [c for c in columns if c not in descriptions]
    if missing:
        raise ValueError(f"describe every column for the product's consumers; no description for {missing}")
    con = duck.connect(domain, place=place)
    try:
        con.register("scaffold_frame", frame)
        con.execute(f'CREATE OR REPLACE TABLE "{domain}" AS SELECT * FROM scaffold_frame')  # noqa: S608
        con.unregister("scaffold_frame")
        types = dict(con.execute(f'SELECT column_name, column_type FROM (DESCRIBE "{domain}")').fetchall())  # noqa: S608
        nulls = con.execute("SELECT " + ", ".join(f'count(*) - count("{c}")' for c in columns)  # noqa: S608
                            + f' FROM "{domain}"').fetchone()
    finally:
        con.close()
    quoted = {key: json.dumps(value) for key, value in
              {"name": f"{domain.capitalize()}", "purpose": purpose, "usage": usage, "limitations": limitations,
               "team": team, "oncall": f"{team} on-call", "owner": owner, "grain": grain, "tag": "source-aligned",
               "database": str(duck.path(domain, place)), "latency_unit": latency[1]}.items()}
    text = _template("data_product.odcs.yaml").substitute(
        domain=domain, table=domain, event_time=event_time, latency_value=json.dumps(latency[0]), **quoted)
    contract = yaml.safe_load(text)
    key = {"unique": True, "primaryKey": True}
    contract["schema"][0]["properties"] = [
        {"name": c, "logicalType": _logical_type(types[c]), "physicalType": types[c],
         "required": c == primary_key or nulls[i] == 0, **(key if c == primary_key else {}),
         "description": descriptions[c]}
        for i, c in enumerate(columns)]
    home = folder(place) / domain
    home.mkdir(parents=True, exist_ok=True)
    contract_file = home / f"{domain}.odcs.yaml"
    contract_file.write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")
    product = yaml.safe_dump(descriptor(contract, inputs), sort_keys=False)
    (home / f"{domain}.odps.yaml").write_text(product, encoding="utf-8")
    tests_file = home / f"test_{domain}_product.py"
    tests_file.write_text(_template("test_data_product.py.tmpl").substitute(domain=domain), encoding="utf-8")
    made = Scaffolded(domain, home, contract_file, tests_file, duck.path(domain, place), contract)
    tests = runpy.run_path(str(tests_file))  # what the product's CI runs with pytest, run here in-process
    for name, test in tests.items():
        if name.startswith("test_") and callable(test):
            try:
                test()
                made.tests[name] = "passed"
            except AssertionError as failed:
                made.tests[name] = f"failed: {failed}"
    return made
