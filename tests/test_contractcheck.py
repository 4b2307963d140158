"""A contract someone else wrote is linted and tested in a process of its own: coursekit.contractcheck."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from coursekit import contractcheck, sandbox

SANDBOXED = [False] + ([True] if sandbox.enabled() and sandbox.problem() is None else [])
FRAME = pd.DataFrame({"order_id": ["O1", "O2", "O3"], "paid_eur": [10.0, 0.0, 20.5]})
RULE = "SELECT COUNT(*) FROM orders WHERE paid_eur < 0"
CONTRACT = f"""
apiVersion: v3.2.0
kind: DataContract
id: urn:brightcart:orders:orders
version: 1.0.0
status: active
schema:
  - name: orders
    physicalType: table
    properties:
      - {{name: order_id, logicalType: string, physicalType: VARCHAR, primaryKey: true, required: true}}
      - name: paid_eur
        logicalType: number
        physicalType: DOUBLE
        quality:
          - {{type: sql, description: no negative amount, query: "{RULE}", mustBe: 0}}
servers:
  - {{server: local, type: duckdb, database: orders.duckdb, schema: main}}
"""


def _with_rule(query: str) -> str:
    return CONTRACT.replace(RULE, query)


@pytest.mark.parametrize("sandboxed", SANDBOXED, ids=lambda s: "sandboxed" if s else "plain")
def test_a_contract_is_linted_and_tested_on_each_case(sandboxed: bool) -> None:
    negative = FRAME.assign(paid_eur=[10.0, -1.0, 20.5])
    verdict = contractcheck.check(CONTRACT, {"good": {"orders": FRAME}, "negative": {"orders": negative}},
                                  lint=True, timeout=60, sandboxed=sandboxed)
    assert verdict.lint == []
    assert verdict.runs["good"].passed, verdict.runs["good"].failures
    assert not verdict.runs["negative"].passed and "no negative amount" in verdict.runs["negative"].failures[0]
    broken = contractcheck.check(CONTRACT.replace("apiVersion: v3.2.0", "apiVersion: v9"), {}, lint=True,
                                 timeout=60, sandboxed=sandboxed)
    assert broken.lint, "a contract of no known version does not lint"


@pytest.mark.parametrize("sandboxed", SANDBOXED, ids=lambda s: "sandboxed" if s else "plain")
def test_a_rule_s_sql_reads_no_file(sandboxed: bool, tmp_path: Path) -> None:
    """Its SQL runs on a database whose file access is off: a rule cannot quote a file in its result."""
    secret = tmp_path / "secret.txt"
    secret.write_text("the course secret", encoding="utf-8")
    reads = _with_rule(f"SELECT length(content) FROM read_text('{secret}')")
    run = contractcheck.check(reads, {"good": {"orders": FRAME}}, lint=False, timeout=60, sandboxed=sandboxed)
    assert not run.runs["good"].passed
    assert "disabled" in run.runs["good"].failures[0] and "17" not in run.runs["good"].failures[0]


def test_a_query_that_never_ends_is_stopped_at_the_time_limit() -> None:
    forever = _with_rule("SELECT COUNT(*) FROM range(1000000000000) AS t(x) WHERE x < 0")
    with pytest.raises(contractcheck.ContractCheckFailed, match="longer than 8 s"):
        contractcheck.check(forever, {"good": {"orders": FRAME}}, lint=False, timeout=8)


@pytest.mark.parametrize(("text", "says"), [
    ("a: &x [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: [*x, *x, *x, *x]\nc: [*b, *b, *b, *b]\n", "anchors and aliases"),
    ("description: " + "x" * (contractcheck.MAX_CHARS + 1), "characters long"),
    ("schema: [\n", "not valid YAML"),
])
def test_an_alias_bomb_a_huge_text_or_broken_yaml_is_refused_before_parsing(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        contractcheck.check(text, {}, lint=True, timeout=60)


def test_only_the_platform_s_server_is_tested() -> None:
    """A server the contract adds before the DuckDB one (a `local` one naming a file) is not what is tested."""
    own = CONTRACT.replace("servers:\n", "servers:\n  - {server: mine, type: local, format: csv, path: /etc/passwd}\n")
    reads = own.replace(RULE, "SELECT length(content) FROM read_text('/etc/passwd')")
    run = contractcheck.check(reads, {"good": {"orders": FRAME}}, lint=False, timeout=60)
    assert not run.runs["good"].passed and "disabled" in run.runs["good"].failures[0], run.runs["good"].failures
    assert "root" not in " ".join(run.runs["good"].failures)


def test_a_rule_over_hundreds_of_millions_of_rows_is_answered_and_the_next_case_checked() -> None:
    """Its process has the kernel's memory cap (RLIMIT_DATA, tested below): a rule over 400 million rows (3 GB
    were they loaded) gets its verdict (its first value, 1, is not 0) and the next case is still tested."""
    huge = _with_rule("SELECT x + 1 FROM range(400000000) AS t(x)")
    verdict = contractcheck.check(huge, {"good": {"orders": FRAME}, "again": {"orders": FRAME}}, lint=False,
                                  timeout=60)
    assert not verdict.runs["good"].passed and not verdict.runs["again"].passed


def test_what_the_grader_runs_gets_the_kernel_s_limits_and_keeps_the_end_of_its_output(tmp_path: Path) -> None:
    code, out = sandbox.run([sys.executable, "-c", "b = bytearray(3 * 2**30)"], workdir=tmp_path, timeout=60,
                            sandboxed=False)
    assert code != 0 and "MemoryError" in out
    code, out = sandbox.run([sys.executable, "-c", "import sys\nfor _ in range(3000): sys.stdout.write('x' * 100_000)\n"
                             "print('the end')"], workdir=tmp_path, timeout=60, sandboxed=False)
    assert code == 0 and out.endswith("the end\n") and len(out) <= sandbox.OUTPUT_KEPT


def test_deep_nesting_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="deep"):
        contractcheck.guard("a: " + "[" * 30_000 + "]" * 30_000)
    with pytest.raises(ValueError, match="deep"):
        contractcheck.guard("a:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 400)))
