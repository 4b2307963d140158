"""Lab 1's grading cases for tests/test_labs.py and tests/test_lab1_fairness.py.

A correct solution in another style (full marks), a wrong solution of each part, one that tampers in each
part (each loses that part's points), and, for the fairness test, plausible wrong solutions that each
replace one part's solution cell. Each dict maps a solution cell's grade id to the code a student puts
there. Contract variants are edits of the reference contract (read from the source notebook), so that
each differs from a correct one in exactly the way its name says.
"""

import re
from pathlib import Path

import nbformat

_LAB = "lab1_governed_orders"
_NB = nbformat.read(Path(__file__).resolve().parents[2] / "source" / _LAB / f"{_LAB}.ipynb", as_version=4)
_REFERENCE = {c.metadata["nbgrader"]["grade_id"]: re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION\n", "", c.source, flags=re.M)
              for c in _NB.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}


def _edited(grade_id: str, *edits: tuple[str, str]) -> str:
    """The reference solution cell ``grade_id`` with each (old, new) edit made; each old text occurs once."""
    text = _REFERENCE[grade_id]
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in the reference {grade_id}"
        text = text.replace(old, new)
    return text


def _contract(*edits: tuple[str, str]) -> str:
    return _edited("part-b-solution", *edits)


_UNIQUE = ("        unique: true       # primaryKey implies both in datacontract-cli 1.2.8; said for other tools\n"
           "        primaryKey: true\n")
_STATUS_RULE = """        quality:
          - metric: invalidValues
            arguments:
              validValues: [paid, refunded, unpaid]
            mustBe: 0
"""
_REPLAY_TEST = _REFERENCE["part-c-solution"][_REFERENCE["part-c-solution"].index("\n\ndef test_a_replayed_order"):
                                              _REFERENCE["part-c-solution"].index("\n\ndef test_order_date_is")]
_TIMEZONE_TEST = _REFERENCE["part-c-solution"][_REFERENCE["part-c-solution"].index(
    "\n\ndef test_order_date_is_the_utc_day"):]

# Correct, but written differently: the grid as DuckDB SQL over a generated calendar; a terse contract
# (flow style, the status and amount rules as one table-level SQL check, the key by primaryKey alone,
# other classification levels); tests built from the course's generators and checked against a
# recomputation, property by property, one of them sending times in a zoneinfo zone and Arrow-backed strings.
ALTERNATIVE = {
    "part-a-solution": '''
import duckdb

def orders_daily(facts, first_day, last_day):
    con = duckdb.connect()
    con.register("facts", facts)
    con.register("regions", pd.DataFrame({"region": list(data.REGIONS)}))
    daily = con.execute("""
        WITH days AS (SELECT CAST(d AS DATE) AS order_date FROM range(CAST(? AS DATE), CAST(? AS DATE) + 1,
                                                                   INTERVAL 1 DAY) AS t(d))
        SELECT days.order_date, regions.region,
               count(f.order_id) AS orders,
               count(*) FILTER (WHERE f.status = 'paid') AS paid_orders,
               count(*) FILTER (WHERE f.status = 'refunded') AS refunded_orders,
               round(coalesce(sum(f.paid_eur), 0), 2) AS revenue_eur,
               round(count(*) FILTER (WHERE f.status = 'paid') / nullif(count(f.order_id), 0), 4) AS conversion
        FROM days CROSS JOIN regions
        LEFT JOIN facts AS f ON f.order_date = days.order_date AND f.region = regions.region
        GROUP BY ALL ORDER BY days.order_date, regions.region
    """, [first_day, last_day]).df()
    con.close()
    daily["order_date"] = daily["order_date"].dt.date
    return daily
''',
    "part-b-solution": '''
ORDER_FACTS_CONTRACT = """
apiVersion: v3.2.0
kind: DataContract
id: urn:brightcart:orders:order_facts
version: 0.1.0
status: draft
domain: orders
schema:
  - name: order_facts
    physicalType: table
    quality:
      - type: sql
        description: statuses are one of three, and no paid amount is negative
        query: SELECT COUNT(*) FROM order_facts WHERE status NOT IN ('paid', 'refunded', 'unpaid') OR paid_eur < 0
        mustBe: 0
    properties:
      - {name: order_id, logicalType: string, physicalType: VARCHAR, primaryKey: true, required: true,
         classification: internal}
      - {name: customer_id, logicalType: string, physicalType: VARCHAR, required: true, classification: confidential}
      - {name: segment, logicalType: string, physicalType: VARCHAR, required: true, classification: internal}
      - {name: region, logicalType: string, physicalType: VARCHAR, required: true, classification: public}
      - {name: items, logicalType: integer, physicalType: BIGINT, required: true, classification: public}
      - {name: status, logicalType: string, physicalType: VARCHAR, required: true, classification: internal}
      - {name: paid_eur, logicalType: number, physicalType: DOUBLE, required: true, classification: confidential}
      - {name: attempts, logicalType: integer, physicalType: BIGINT, required: true, classification: internal}
      - {name: placed_at, logicalType: timestamp, physicalType: TIMESTAMP WITH TIME ZONE, required: true,
         classification: internal}
      - {name: order_date, logicalType: date, physicalType: DATE, required: true, classification: internal}
servers:
  - {server: local, type: duckdb, database: order_facts.duckdb, schema: main}
"""
''',
    "part-c-solution": '''
%%writefile test_order_facts.py
import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from coursekit import data, quality


@pytest.fixture
def inputs():
    orders, payments, customers = quality.sample_inputs(n_orders=60, seed=4, replayed=3)
    return orders, payments, customers


def test_one_row_per_distinct_order(order_facts, inputs):
    orders, payments, customers = inputs
    facts = order_facts(orders, payments, customers)
    assert facts["order_id"].is_unique and set(facts["order_id"]) == set(orders["order_id"])


def test_paid_means_captured_in_euros(order_facts, inputs):
    orders, payments, customers = inputs
    facts = order_facts(orders, payments, customers).set_index("order_id")
    captured = payments[payments["status"] == "captured"].groupby("order_id")["amount_cents"].max() / 100
    paid = facts[facts["status"] == "paid"]
    assert set(paid.index) == set(captured.index)
    assert (paid["paid_eur"] - captured.reindex(paid.index)).abs().max() < 1e-9
    assert (facts.loc[facts["status"] != "paid", "paid_eur"] == 0).all()


def test_segment_is_the_customer_s(order_facts, inputs):
    orders, payments, customers = inputs
    facts = order_facts(orders, payments, customers)
    expected = facts["customer_id"].map(customers.set_index("customer_id")["segment"])
    assert (facts["segment"] == expected).all() and len(facts) == orders["order_id"].nunique()


def test_order_date_is_the_utc_date_at_any_hour(order_facts, inputs):
    orders, payments, customers = inputs
    hours = pd.to_timedelta([(7 * i) % 24 for i in range(len(orders))], unit="h")
    # the feed as another team might send it: local times (a zoneinfo zone), Arrow-backed strings
    local = (orders["placed_at"].dt.normalize() + hours).dt.tz_convert(ZoneInfo("Europe/Amsterdam"))
    orders = orders.assign(placed_at=local, region=orders["region"].astype("string[pyarrow]"))
    facts = order_facts(orders, payments, customers)
    assert (facts["order_date"] == facts["placed_at"].dt.tz_convert("UTC").dt.date).all()
''',
}

# Wrong in every part: a groupby (no row for what did not happen) that counts refunds as paid; a contract
# in an old version of the standard that checks nothing and classifies nothing; tests that expect cents.
WRONG = {
    "part-a-solution": '''
def orders_daily(facts, first_day, last_day):
    inside = facts[(facts["order_date"] >= first_day) & (facts["order_date"] <= last_day)]
    paid = inside["status"].isin(["paid", "refunded"])
    daily = inside.assign(paid=paid, refunded=inside["status"] == "refunded").groupby(["order_date", "region"]).agg(
        orders=("order_id", "size"), paid_orders=("paid", "sum"), refunded_orders=("refunded", "sum"),
        revenue_eur=("paid_eur", "sum")).reset_index()
    daily["conversion"] = daily["paid_orders"] / daily["orders"]
    return daily
''',
    "part-b-solution": '''
ORDER_FACTS_CONTRACT = """
apiVersion: v2.2.2
kind: DataContract
id: order_facts
version: 1.0.0
status: active
schema:
  - name: order_facts
    properties:
      - {name: order_id, logicalType: string}
      - {name: customer_id, logicalType: string}
      - {name: status, logicalType: string}
      - {name: paid_eur, logicalType: number}
servers:
  - {server: local, type: duckdb, database: order_facts.duckdb, schema: main}
"""
''',
    "part-c-solution": _edited("part-c-solution", ('"O1": 10.0, "O2": 20.5', '"O1": 1000, "O2": 2050')),
}

# Tampering, each caught only because the grader judges outside the kernel: every later cell's errors are
# swallowed (so every visible test "passes"), and the answers are wrong.
_SWALLOW = '''
import ast

class _Swallow(ast.NodeTransformer):   # wrap every later cell in try/except: no visible test can fail
    def visit_Module(self, node):
        handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()), name=None, body=[ast.Pass()])
        node.body = [ast.Try(body=node.body or [ast.Pass()], handlers=[handler], orelse=[], finalbody=[])]
        return ast.fix_missing_locations(node)

get_ipython().ast_transformers.append(_Swallow())
'''
TAMPERING = {
    "part-a-solution": _SWALLOW + '''
def orders_daily(facts, first_day, last_day):
    return pd.DataFrame()
''',
    "part-b-solution": '''
# an alias bomb: each level doubles what the document expands to (12 levels, so that this kernel survives it;
# the grader refuses aliases before parsing)
ORDER_FACTS_CONTRACT = "kind: DataContract\\nl0: &l0 [x, x]\\n" + "".join(
    f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]\\n" for i in range(1, 12))
''',
    "part-c-solution": '''
%%writefile test_order_facts.py
def test_anything(order_facts):
    assert callable(order_facts)
''',
}

# the student who fills in only the first part, and what the instructor gives each student's written answer
PARTIAL = ["part-a-solution"]
MANUAL = {"part-d-answer": {"alice": 2.0, "bob": 0.0, "carol": 1.0}}

# ---- tests/test_lab1_fairness.py ----------------------------------------------------------------------
# Plausible wrong solutions, each the reference with one mistake, as a learner makes it: (the solution
# cell it replaces, its code, the test cells it must lose points in).
_A = _REFERENCE["part-a-solution"]
EACH_WRONG = {
    # A: the groupby alone, no row for a day and region without orders (the numbers are right)
    "a_no_empty_rows": ("part-a-solution", _A.replace("             .reindex(grid, fill_value=0)\n", ""),
                        {"part-a-grid"}),
    # A: last_day left out, as Python's range() would (the numbers of the days it has are right)
    "a_last_day_excluded": ("part-a-solution", _A.replace(
        'pd.date_range(first_day, last_day, freq="D")', 'pd.date_range(first_day, last_day, freq="D", inclusive="left")'
    ).replace('(facts["order_date"] <= last_day)', '(facts["order_date"] < last_day)'), {"part-a-grid"}),
    # A: a refunded order counted as paid, its revenue too (it was captured, after all)
    "a_refunds_are_paid": ("part-a-solution", _A.replace(
        'paid=inside["status"] == "paid"', 'paid=inside["status"].isin(["paid", "refunded"])'), {"part-a-values"}),
    # A: conversion over every order of the day in all regions, not the region's
    "a_conversion_of_the_day": ("part-a-solution", _A.replace(
        'daily["orders"].where(daily["orders"] > 0)',
        'daily.groupby("order_date")["orders"].transform("sum").where(daily["orders"] > 0)'), {"part-a-values"}),
    # A: no orders, conversion 0 (a dashboard would read 0 % where nothing happened)
    "a_conversion_zero": ("part-a-solution", _A.replace(
        '.where(daily["orders"] > 0)).round(4)', '.where(daily["orders"] > 0)).fillna(0).round(4)'), {"part-a-grid"}),
    # A: conversion rounded to 3 decimals, not 4 (5 of 6 is 0.833, not 0.8333)
    "a_conversion_3_decimals": ("part-a-solution", _A.replace(
        '.where(daily["orders"] > 0)).round(4)', '.where(daily["orders"] > 0)).round(3)'), {"part-a-values"}),
    # B: the key declared unique but not the primary key (duplicates are still caught)
    "b_no_primary_key": ("part-b-solution", _contract((_UNIQUE, "        unique: true\n")), {"part-b-valid"}),
    # B: no rule on status: a batch with an unknown status passes
    "b_status_unchecked": ("part-b-solution", _contract((_STATUS_RULE, "")), {"part-b-true"}),
    # B: unique not declared at all: a replayed order passes
    "b_duplicates_pass": ("part-b-solution", _contract((_UNIQUE, "")), {"part-b-valid", "part-b-true"}),
    # B: segment not declared required: an order whose customer has no segment passes
    "b_segment_optional": ("part-b-solution", _contract(
        ("      - name: segment\n        logicalType: string\n        physicalType: VARCHAR\n        required: true\n",
         "      - name: segment\n        logicalType: string\n        physicalType: VARCHAR\n")), {"part-b-true"}),
    # B: the physical types of a CSV export, not DuckDB's (datacontract-cli does not check them on DuckDB)
    "b_physical_types": ("part-b-solution", _contract(
        ("      - name: items\n        logicalType: integer\n        physicalType: BIGINT\n",
         "      - name: items\n        logicalType: integer\n        physicalType: INTEGER\n")),
        {"part-b-valid"}),
    # B: valid and true, but the team forgot to classify two columns
    "b_unclassified": ("part-b-solution", _contract(
        ("        physicalType: BIGINT\n        required: true\n        classification: public\n",
         "        physicalType: BIGINT\n        required: true\n"),
        ("(not the customer's local day).\n        classification: internal\n", "(not the customer's local day).\n")),
        {"part-b-policies"}),
    # B: the id is the table's name, not the federation's URN
    "b_bare_id": ("part-b-solution", _contract(("id: urn:brightcart:orders:order_facts\n", "id: order_facts\n")),
                  {"part-b-policies"}),
    # C: a test that expects cents (the payments domain's unit): it fails on the correct pipeline
    "c_expects_cents": ("part-c-solution", WRONG["part-c-solution"], {"part-c-tests"}),
    # C: no replayed order in any test: the duplicated rows go through (4 of 5)
    "c_no_replay": ("part-c-solution", _REFERENCE["part-c-solution"].replace(_REPLAY_TEST, "\n"), {"part-c-tests"}),
    # C: no test crosses midnight: the time-zone slip goes through (4 of 5)
    "c_no_midnight": ("part-c-solution", _REFERENCE["part-c-solution"].replace(_TIMEZONE_TEST, "\n"),
                      {"part-c-tests"}),
}
