"""Hidden tests of Lab 1, judged by the grader outside the student's kernel (see coursekit.hidden).

Each function prepares one test cell's hidden inputs here, names the call the kernel makes, and checks
the value it reports against a truth computed here:

* Part A (``orders_daily``): order facts built by the Orders team's pipeline from other seeds, sizes and
  start times (across one to three UTC midnights), written to a Parquet file the kernel reads; the truth
  is counted here in plain Python, not with the reference's pandas.
* Part B (the contract): the kernel only hands over the contract's text. The grader reads its schema,
  lints it (datacontract-cli, ODCS v3.2.0) and tests it on order facts of another seed and on four
  batches with one planted fault each (every test must fail on those), both in a sandboxed process with a
  time limit (coursekit.contractcheck: the contract's SQL is the learner's), and evaluates the
  federation's policies (lesson 04's Rego, through coursekit.policy) on it.
* Part C (the learner's tests): the kernel hands over the test file's text; the grader runs it against the
  correct pipeline and each incident (incidents.py), each run a fresh process in the grading sandbox
  (coursekit.mutation) with a time limit: one fifth of the points per incident caught, none if a test
  fails on the correct pipeline.

Not released to students; hidden from the grader kernel.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import random
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from coursekit import contractcheck, data, governance, hidden, mutation, policy, products, quality
from coursekit.hidden import Hidden, Partial

LAB = "lab1_governed_orders"
COLUMNS = ["order_date", "region", "orders", "paid_orders", "refunded_orders", "revenue_eur", "conversion"]
FACT_TYPES = {"order_id": "string", "customer_id": "string", "segment": "string", "region": "string",
              "items": "integer", "status": "string", "paid_eur": "number", "attempts": "integer",
              "placed_at": "timestamp", "order_date": "date"}
# seconds: each of Part B's two checking processes, and each run of the learner's tests in Part C (the correct
# pipeline's, then the five incidents' two at a time, in three rounds): whatever a submission's contract and
# tests do, its checks here take at most 2 x 15 + 4 x 10 = 70 s
CONTRACT_TIMEOUT = 15
TESTS_TIMEOUT = 10
SETUP_A = ("import datetime as _hidden_dt\nimport pandas as _hidden_pd\n"
           "from coursekit.hidden import records as _hidden_records")


def _lab_folder() -> Path:
    """source/<lab> of the course being graded (its pipeline and incidents, as released)."""
    return Path(__file__).resolve().parent.parent / "source" / LAB


def _module(name: str) -> Any:
    path = _lab_folder() / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"coursekit_graders_{LAB}_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _facts(rng: random.Random) -> pd.DataFrame:
    """Order facts of a hidden seed and size, placed over one to three UTC midnights, with replays."""
    seed, n = rng.randrange(100, 10_000), rng.randrange(80, 161)
    n_customers = rng.randrange(20, 61)
    start = dt.datetime(2026, 11, rng.randrange(3, 25), rng.randrange(18, 24), rng.randrange(60), tzinfo=dt.UTC)
    minutes = rng.uniform(8 * 60, 56 * 60)
    orders = quality.replay(data.orders(n, seed, n_customers=n_customers, start=start, minutes=minutes),
                            rows=rng.randrange(2, 6), seed=seed)
    payments = data.payments(n, seed, n_customers=n_customers, start=start, minutes=minutes)
    return _module("orders_pipeline").order_facts(orders, payments, data.customers(n_customers, seed))


def _daily_truth(facts: pd.DataFrame, first: dt.date, last: dt.date) -> dict[tuple[str, str], list[Any]]:
    """orders_daily's rows, counted one fact at a time.

    ``{(day, region): [orders, paid, refunded, revenue, conversion]}``
    """
    truth: dict[tuple[str, str], list[Any]] = {}
    day = first
    while day <= last:
        for region in sorted(data.REGIONS):
            truth[(day.isoformat(), region)] = [0, 0, 0, 0.0]
        day += dt.timedelta(days=1)
    for row in facts.itertuples(index=False):
        key = (row.order_date.isoformat(), row.region)
        if key in truth:
            counts = truth[key]
            counts[0] += 1
            counts[1] += row.status == "paid"
            counts[2] += row.status == "refunded"
            counts[3] += float(row.paid_eur)
    return {key: [o, p, r, round(v, 2), round(p / o, 4) if o else None] for key, (o, p, r, v) in truth.items()}


def _a_inputs(rng: random.Random) -> tuple[pd.DataFrame, dt.date, dt.date, str]:
    facts = _facts(rng)
    days = sorted(set(facts["order_date"]))
    # a day before the first order and, half the time, a range that cuts the last day off
    first = days[0] - dt.timedelta(days=rng.randrange(0, 2))
    last = days[-1] if rng.random() < 0.5 or len(days) < 3 else days[-2]
    folder = hidden.scratch("lab1-a-")
    path = folder / "facts.parquet"
    facts.to_parquet(path, index=False)
    call = (f"_hidden_records(orders_daily(_hidden_pd.read_parquet({str(path)!r}), "
            f"_hidden_dt.date({first.year}, {first.month}, {first.day}), "
            f"_hidden_dt.date({last.year}, {last.month}, {last.day})))")
    return facts, first, last, call


def _table(value: Any) -> tuple[list[str], list[list[Any]]]:
    assert isinstance(value, dict) and set(value) == {"columns", "rows"}, (
        f"orders_daily returned a {type(value).__name__}, not a pandas DataFrame")
    return value["columns"], value["rows"]


def part_a_grid(rng: random.Random) -> Hidden:
    """orders_daily's rows, columns and order, and its zero rows, on other facts and date ranges."""
    facts, first, last, call = _a_inputs(rng)
    truth = _daily_truth(facts, first, last)

    def verify(value: Any) -> None:
        columns, rows = _table(value)
        assert columns == COLUMNS, f"the columns are {columns}, not {COLUMNS} in that order"
        keys = [(str(r[0]), r[1]) for r in rows]
        assert len(keys) == len(truth), (
            f"{len(keys)} rows for {len(truth) // 5} days and 5 regions: one row per day and region, every day")
        assert keys == list(truth), "the rows are not exactly one per (day, region), sorted by order_date, region"
        for row in rows:
            want = truth[(str(row[0]), row[1])]
            if want[0] == 0:
                assert row[2:6] == [0, 0, 0, 0] and row[6] is None, (
                    f"a day and region without orders should read 0, 0, 0, 0.0 and NaN: {row}")

    return Hidden(setup=SETUP_A, call=call, verify=verify)


def part_a_values(rng: random.Random) -> Hidden:
    """orders_daily's numbers for each (day, region) that has orders, on other facts and date ranges."""
    facts, first, last, call = _a_inputs(rng)
    truth = {k: v for k, v in _daily_truth(facts, first, last).items() if v[0] > 0}

    def verify(value: Any) -> None:
        columns, rows = _table(value)
        missing = [c for c in COLUMNS if c not in columns]
        assert not missing, f"orders_daily has no column {missing}"
        at = {c: columns.index(c) for c in COLUMNS}
        checked = 0
        for row in rows:
            key = (str(row[at["order_date"]]), row[at["region"]])
            if key not in truth:
                continue
            checked += 1
            want, got = truth[key], [row[at[c]] for c in COLUMNS[2:]]
            assert got[:3] == want[:3], f"{key}: orders, paid and refunded orders are {got[:3]}, not {want[:3]}"
            assert isinstance(got[3], int | float) and abs(got[3] - want[3]) < 0.006, (
                f"{key}: revenue_eur is {got[3]}, not {want[3]}")
            assert isinstance(got[4], int | float) and not math.isnan(got[4]) and abs(got[4] - want[4]) < 2e-4, (
                f"{key}: conversion is {got[4]}, not {want[4]}")
        assert checked, "no row of orders_daily is a (day, region) with orders in the range"

    return Hidden(setup=SETUP_A, call=call, verify=verify)


# ---- Part B: the contract --------------------------------------------------------------------------

def _contract(value: Any) -> dict[str, Any]:
    assert isinstance(value, str), f"ORDER_FACTS_CONTRACT is a {type(value).__name__}, not the contract's YAML text"
    try:
        contractcheck.guard(value)
    except ValueError as exc:
        raise AssertionError(str(exc)) from None
    try:
        document = yaml.safe_load(value)
    except (yaml.YAMLError, ValueError, ArithmeticError) as exc:  # a number Python cannot hold
        raise AssertionError(f"ORDER_FACTS_CONTRACT is not valid YAML: {str(exc)[:300]}") from None
    assert isinstance(document, dict), "ORDER_FACTS_CONTRACT is not a YAML mapping (a contract document)"
    _shaped(document)
    return document


def _shaped(document: dict[str, Any]) -> None:
    """The shape every later check relies on, each failure saying what to change."""
    for key in ("schema", "servers"):
        items = document.get(key)
        assert items is None or (isinstance(items, list) and all(isinstance(i, dict) for i in items)), (
            f"the contract's {key} is a list of mappings (`- name: ...`), not {type(items).__name__}")
    for table in document.get("schema") or []:
        props = table.get("properties")
        assert props is None or (isinstance(props, list) and all(isinstance(p, dict) for p in props)), (
            f"schema {table.get('name')!r}: its properties are a list of mappings (`- name: ...`)")
        names = [p.get("name") for p in props or []]
        assert all(isinstance(n, str) for n in names), (
            f"schema {table.get('name')!r}: every property has a name that is text, not {names}")
        assert len(set(names)) == len(names), f"schema {table.get('name')!r}: a property is declared twice"


def _table_of(document: dict[str, Any]) -> dict[str, Any]:
    tables = [s for s in document.get("schema") or [] if isinstance(s, dict) and s.get("name") == "order_facts"]
    assert len(tables) == 1, "the contract's schema has no object named order_facts"
    return tables[0]


def part_b_valid(rng: random.Random) -> Hidden:
    """The contract is valid ODCS v3.2.0 and describes order_facts: its ten columns, their types, its key."""
    facts = _facts(rng)

    def verify(value: Any) -> None:
        document = _contract(value)
        assert document.get("apiVersion") == "v3.2.0", "the contract's apiVersion is not v3.2.0"
        table = _table_of(document)
        props = {p.get("name"): p for p in table.get("properties") or [] if isinstance(p, dict)}
        assert set(props) == set(FACT_TYPES), (
            f"order_facts' properties are not its ten columns: missing {sorted(set(FACT_TYPES) - set(props))}, "
            f"extra {sorted(set(props) - set(FACT_TYPES))}")
        wrong = sorted(n for n, t in FACT_TYPES.items() if props[n].get("logicalType") != t)
        assert not wrong, f"these columns' logicalType is not what the table holds: {wrong}"
        keys = sorted(n for n, p in props.items() if p.get("primaryKey") is True)
        assert keys == ["order_id"], f"order_facts' primary key should be order_id alone, not {keys}"
        wrong = products.physical_type_problems(document, {"order_facts": facts})
        assert not wrong, f"physicalType is not the column's DuckDB type: {'; '.join(wrong)[:300]}"
        problems = _checked(value, {}, lint=True).lint
        assert not problems, f"the contract is not valid ODCS v3.2.0: {problems[0][:300]}"

    return Hidden(call="ORDER_FACTS_CONTRACT", verify=verify)


def _faults(facts: pd.DataFrame, rng: random.Random) -> dict[str, pd.DataFrame]:
    """Four batches of order facts, each with one fault planted in a row chosen here."""
    row = rng.randrange(len(facts))
    replayed = pd.concat([facts, facts.iloc[[row]]], ignore_index=True).sort_values("order_id", ignore_index=True)
    shipped, orphan, negative = facts.copy(), facts.copy(), facts.copy()
    shipped.loc[rng.randrange(len(facts)), "status"] = rng.choice(["shipped", "cancelled", "PAID", "Refunded", "paid "])
    orphan.loc[rng.randrange(len(facts)), "segment"] = None
    paid = negative.index[negative["status"] == "paid"]
    negative.loc[paid[rng.randrange(len(paid))], "paid_eur"] = -round(rng.uniform(5, 80), 2)
    return {"an order twice (a replay)": replayed, "a status that is not paid, refunded or unpaid": shipped,
            "an order whose customer has no segment": orphan, "a negative paid_eur": negative}


def part_b_true(rng: random.Random) -> Hidden:
    """The contract's checks pass on order facts of another seed, and fail on each planted fault."""
    facts = _facts(rng)
    faults = _faults(facts, rng)

    def verify(value: Any) -> None:
        _contract(value)
        cases = {"correct": {"order_facts": facts}, **{fault: {"order_facts": b} for fault, b in faults.items()}}
        runs = _checked(value, cases, lint=False).runs
        assert runs["correct"].passed, (
            f"the contract's checks fail on correct order facts: {runs['correct'].failures[:2]}")
        for fault in faults:
            assert not runs[fault].passed, f"the contract's checks pass on a batch with {fault}"

    return Hidden(call="ORDER_FACTS_CONTRACT", verify=verify)


def _checked(text: str, cases: dict[str, dict[str, pd.DataFrame]], *, lint: bool) -> contractcheck.Verdict:
    try:
        return contractcheck.check(text, cases, lint=lint, timeout=CONTRACT_TIMEOUT, hide=[_lab_folder().parent.parent])
    except contractcheck.ContractCheckFailed as exc:
        raise AssertionError(str(exc)) from None


def part_b_policies(rng: random.Random) -> Hidden:
    """The federation's global policies (classification, naming) find nothing wrong with the contract."""
    def verify(value: Any) -> None:
        document = _contract(value)
        try:
            violations = governance.check(document)
        except policy.PolicyError as exc:
            raise AssertionError(f"the policy engine could not evaluate the contract: {str(exc)[:300]}") from None
        assert not violations, f"the global policies deny the contract: {governance.format_violations(violations[:3])}"

    return Hidden(call="ORDER_FACTS_CONTRACT", verify=verify)


# ---- Part C: the learner's tests --------------------------------------------------------------------

def part_c_tests(rng: random.Random) -> Hidden:
    """The learner's test file against the correct pipeline and each incident, outside the kernel."""
    correct, defects = _module("incidents").variants()
    root = _lab_folder().parent.parent

    def verify(value: Any) -> Partial | None:
        assert isinstance(value, str) and value.strip(), "test_order_facts.py is empty"
        on_correct, verdicts = mutation.judge(value, correct, defects, fixture="order_facts", function="order_facts",
                                              timeout=TESTS_TIMEOUT, hide=[root])
        assert on_correct.passed, f"your tests do not pass on the correct pipeline: {on_correct.reason()}"
        caught = [name for name, v in verdicts.items() if v.caught]
        missed = [name for name, v in verdicts.items() if not v.caught]
        assert caught, "your tests pass on the correct pipeline but catch none of the five incidents"
        if missed:
            return Partial(len(caught) / len(verdicts),
                           f"your tests caught {len(caught)} of the {len(verdicts)} incidents; not {', '.join(missed)}")
        return None

    return Hidden(call="open('test_order_facts.py', encoding='utf-8').read()", verify=verify)
