"""Lab 2 grades fairly: every plausible wrong solution loses points in its own part, and only there.

How, and why that is enough, is in ``tests/fairness.py``; the wrong solutions are ``EACH_WRONG`` in
``tests/lab_cases/lab2_realtime_orders.py``.
"""

import fairness

LAB = "lab2_realtime_orders"
PARTS = {"a": "publish_orders", "b": "windowed_revenue", "c": "route_malformed", "d": "count_paid"}
SECRET = "lab2 fairness: a fixed course secret, so the hidden data is the same on every run"

(test_each_part_s_tests_call_only_that_part_s_function,
 test_each_wrong_solution_replaces_one_part_with_its_function_only,
 test_every_wrong_solution_loses_its_part) = fairness.lab_tests(LAB, PARTS, SECRET, "LAB2_FAIRNESS_SECRET")
