"""Lint and test a data contract someone else wrote (a lab submission's), in a process of its own.

A contract is not only data: its ``quality`` rules carry SQL, which ``datacontract test`` runs on the
DuckDB database it checks, and a lint resolves the references it names. Run in the grader's process,
one rule could read any file the grader can (``read_text(...)``, its result then quoted in the
feedback), run for as long as it likes (``range(10^12)``), or fetch a URL. So the grader:

* refuses, before parsing, a text over :data:`MAX_CHARS`, nested deeper than :data:`MAX_DEPTH` (a YAML
  parser's time grows fast with depth), or with YAML anchors and aliases (:func:`guard`: a few aliases
  can stand for billions of values once the document is expanded);
* lints and tests in a fresh process (``python -m coursekit.contractcheck FOLDER``), in the grading
  sandbox when it is on (:func:`coursekit.sandbox.run`: no network, nothing of the machine but the system,
  the Python environment and its own folder), killed at a time limit;
* in that process, datacontract-cli treats the contract as untrusted (no environment variables, no
  references fetched), and the DuckDB connection its SQL runs on has file access switched off (the
  database is open already), one thread and a memory limit.

::

    from coursekit import contractcheck
    verdict = contractcheck.check(text, {"good": {"order_facts": facts}, "replayed": {"order_facts": bad}},
                                  lint=True, timeout=30)
    verdict.lint                    # [] when it lints
    verdict.runs["good"].passed     # datacontract test passed on that case's tables
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from coursekit import sandbox

MAX_CHARS = 100_000
MAX_DEPTH = 64
DUCKDB_MEMORY = "256MB"
CONTRACT_FILE, CASES_FILE, RESULT_FILE = "contract.yaml", "cases.json", "result.json"


class ContractCheckFailed(Exception):
    """The contract could not be checked: it timed out, or the checking process failed."""


def _flow_depth(text: str) -> int:
    """How deep ``[`` and ``{`` nest in ``text`` (brackets inside quotes count too: an upper bound)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
    return deepest


def guard(text: str) -> None:
    """Raise ``ValueError`` (saying what to change) for a text too long, nested too deep (a parser's time
    grows with it), or with YAML anchors or aliases."""
    if len(text) > MAX_CHARS:
        raise ValueError(f"the contract is {len(text):,} characters long; a contract of this size is under "
                         f"{MAX_CHARS:,}")
    if _flow_depth(text) > MAX_DEPTH:
        raise ValueError(f"the contract nests brackets more than {MAX_DEPTH} deep: a contract needs a few levels")
    depth = 0
    try:
        for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ValueError("the contract uses YAML anchors and aliases (&name, *name): write each value out")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ValueError(f"the contract nests more than {MAX_DEPTH} levels deep: a contract needs a few")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        raise ValueError(f"the contract is not valid YAML: {exc}") from None


@dataclass(frozen=True)
class Run:
    """One ``datacontract test``: its result (``passed``, ``failed``, ``warning``, ``error``) and what did not pass."""

    result: str
    failures: list[str]

    @property
    def passed(self) -> bool:
        return self.result == "passed"


@dataclass(frozen=True)
class Verdict:
    """``lint``: what ``datacontract lint`` found (None when not asked); ``runs``: each case's test."""

    lint: list[str] | None
    runs: dict[str, Run]


def check(text: str, cases: Mapping[str, Mapping[str, Any]], *, lint: bool, timeout: float,
          hide: Sequence[Path] = (), sandboxed: bool | None = None) -> Verdict:
    """Lint the contract ``text`` (when ``lint``) and test it on each case's tables (``{case: {table: frame}}``,
    see :func:`coursekit.products.test_frames`) in a fresh process; ``hide``: folders it must not see.

    Raises ``ValueError`` for a text :func:`guard` refuses, :class:`ContractCheckFailed` when the process
    is killed at ``timeout`` seconds or fails."""
    guard(text)
    folder = Path(tempfile.mkdtemp(prefix="coursekit-contract-"))
    try:
        (folder / CONTRACT_FILE).write_text(text, encoding="utf-8")
        files: dict[str, dict[str, str]] = {}
        for i, (case, tables) in enumerate(cases.items()):
            files[case] = {}
            for j, (table, frame) in enumerate(tables.items()):
                name = f"case{i}_table{j}.parquet"
                frame.to_parquet(folder / name, index=False)
                files[case][table] = name
        (folder / CASES_FILE).write_text(json.dumps({"lint": lint, "cases": files}), encoding="utf-8")
        code, out = sandbox.run([sys.executable, "-m", "coursekit.contractcheck", str(folder)], workdir=folder,
                                timeout=timeout, set_env={"ARROW_DEFAULT_MEMORY_POOL": "system"}, hide=list(hide),
                                sandboxed=sandboxed)
        if code is None:
            raise ContractCheckFailed(f"checking the contract took longer than {timeout:.0f} s: make its quality "
                                      "rules' queries ones that a table of a few hundred rows answers at once")
        result = folder / RESULT_FILE
        if code != 0 or not result.is_file():
            tail = [line for line in out.strip().splitlines() if line.strip()][-1:] or [f"exit status {code}"]
            raise ContractCheckFailed(f"datacontract-cli could not check the contract: {tail[0][:300]}")
        done = json.loads(result.read_text(encoding="utf-8"))
        return Verdict(done["lint"], {case: Run(**run) for case, run in done["runs"].items()})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _confine_duckdb() -> None:
    """Every DuckDB database datacontract-cli opens through ibis loses file access once it is open."""
    import ibis

    connect = ibis.duckdb.connect

    def confined(*args: Any, **kwargs: Any) -> Any:
        con = connect(*args, **kwargs)
        con.raw_sql(f"SET threads = 1; SET memory_limit = '{DUCKDB_MEMORY}'; SET enable_external_access = false")
        return con

    ibis.duckdb.connect = confined


def main(folder: Path) -> None:
    """The checking process: read the folder :func:`check` wrote, write its verdict there."""
    import pandas as pd

    from coursekit import products

    _confine_duckdb()
    text = (folder / CONTRACT_FILE).read_text(encoding="utf-8")
    guard(text)
    asked = json.loads((folder / CASES_FILE).read_text(encoding="utf-8"))
    document = yaml.safe_load(text)
    if not isinstance(document, dict):
        raise SystemExit("the contract is not a YAML mapping")
    lint = products.lint(document, untrusted=True) if asked["lint"] else None
    runs = {}
    for case, tables in asked["cases"].items():
        try:
            run = products.test_frames(document, {t: pd.read_parquet(folder / f) for t, f in tables.items()},
                                       untrusted=True)
            runs[case] = {"result": run.result.value, "failures": products.failures(run)}
        except Exception as exc:  # noqa: BLE001 - a contract the tool cannot test: that case's verdict
            runs[case] = {"result": "error", "failures": [f"{type(exc).__name__}: {exc}"[:500]]}
    (folder / RESULT_FILE).write_text(json.dumps({"lint": lint, "runs": runs}), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
