"""Lab 1 grades fairly: every plausible wrong solution loses points in its own part, and only there.

How, and why that is enough, is in ``tests/fairness.py``; the wrong solutions are ``EACH_WRONG`` in
``tests/lab_cases/lab1_governed_orders.py``. Part B's three test cells all read the contract; Part C's
reads the file its solution cell writes, and gives partial credit (one point per incident caught).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import fairness
from conftest import ROOT

LAB = "lab1_governed_orders"
PARTS = {"a": "orders_daily", "b": "ORDER_FACTS_CONTRACT", "c": "test_order_facts.py"}
SECRET = "lab1 fairness: a fixed course secret, so the hidden data is the same on every run"


def test_each_part_s_tests_use_only_that_part_s_answer() -> None:
    fairness.check_parts_are_independent(LAB, PARTS)


def test_each_wrong_solution_replaces_one_part_only() -> None:
    fairness.check_each_wrong_replaces_one_part(LAB, PARTS)


@pytest.mark.notebooks
@pytest.mark.cost("lab lab1_governed_orders: fairness")
def test_every_wrong_solution_loses_its_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fairness.check_every_wrong_solution_loses_its_part(LAB, tmp_path, monkeypatch,
                                                       os.environ.get("LAB1_FAIRNESS_SECRET", SECRET),
                                                       seen_elsewhere=frozenset({"part-c-tests", "part-b-policies"}))


def test_the_learner_sees_each_policy_violation_and_each_missed_incident() -> None:
    """What the grader's kernel cannot show: in the learner's own kernel (no memory cap) the visible policy
    test fails on each contract the policies deny, and Part C's visible test shows each missed incident."""
    import yaml

    from coursekit import governance, mutation, policy

    nb = fairness.source(LAB)
    visible = {fairness.meta(c)["grade_id"]: c.source[:c.source.index("### BEGIN HIDDEN")]
               for c in nb.cells if fairness.meta(c).get("grade_id") in ("part-b-policies", "part-c-tests")}
    setup = next(c.source for c in nb.cells if fairness.meta(c).get("grade_id") == "setup")
    folder = ROOT / "source" / LAB
    for name, (_, code, failing) in fairness.cases(LAB).EACH_WRONG.items():
        if "part-b-policies" in failing:
            space = {"yaml": yaml, "governance": governance, "policy": policy}
            exec(code, space)
            with pytest.raises(AssertionError, match="the global policies deny the contract"):
                exec(visible["part-b-policies"], space)
        if "part-c-tests" in failing and name != "c_expects_cents":
            tests = code.split("\n", 1)[1]   # the file the %%writefile cell writes
            correct, defects = _variants(folder)
            on_correct, verdicts = mutation.judge(tests, correct, defects, fixture="order_facts",
                                                  function="order_facts", here=True)
            assert on_correct.passed and not all(v.caught for v in verdicts.values()), name
    assert "policy" in setup


def _variants(folder: Path) -> tuple[object, list[object]]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("lab1_incidents", folder / "incidents.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.variants()
