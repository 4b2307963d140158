"""Lab 3 grades fairly: every plausible wrong solution loses points in its own part, and only there.

How, and why that is enough, is in ``tests/fairness.py``; the wrong solutions are ``EACH_WRONG`` in
``tests/lab_cases/lab3_realtime_ml.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import fairness

LAB = "lab3_realtime_ml"
PARTS = {"a": "training_set", "b": "train_model", "c": "register", "d": "score_stream"}
SECRET = "lab3 fairness: a fixed course secret, so the hidden data is the same on every run"


def test_each_part_s_tests_call_only_that_part_s_function() -> None:
    fairness.check_parts_are_independent(LAB, PARTS)


def test_each_wrong_solution_replaces_one_part_with_its_function_only() -> None:
    fairness.check_each_wrong_replaces_one_part(LAB, PARTS)


@pytest.mark.notebooks
@pytest.mark.engines
@pytest.mark.cost("lab lab3_realtime_ml: fairness")
def test_every_wrong_solution_loses_its_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bootstrap: str) -> None:
    fairness.check_every_wrong_solution_loses_its_part(LAB, tmp_path, monkeypatch,
                                                       os.environ.get("LAB3_FAIRNESS_SECRET", SECRET))
