"""Self-checks for lesson exercises.

A lesson exercise is four cells, found by their tags:

* ``starter:<id>``: code the learner completes; runs without error as shipped;
* ``check:<id>``: ``with check("<id>"): assert ..., "what is wrong"`` — says in plain words what
  is wrong and never stops Restart & Run All;
* ``solution:<id>``: a markdown cell with the reference solution folded in ``<details>``;
* ``wrong:<id>``: a markdown cell, folded in ``<details>``, with two or more wrong answers a learner
  really writes, each a ```python block whose first line is ``# the check says: <words of its message>``.

The test suite runs the lesson as written (every untouched starter must fail its check), then
replays each exercise with each wrong answer (the check must fail, with those words) and with its
solution (the check must pass); see :func:`coursekit.notebooks.exercise_trials`. It reads the
outcomes from the JSON-lines file named by ``COURSEKIT_CHECK_LOG``.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

LOG_ENV = "COURSEKIT_CHECK_LOG"


class _Outcome:
    """What a check found: ``passed`` and, when it did not pass, ``reason``."""

    def __init__(self) -> None:
        self.passed = False
        self.reason = ""

    def __bool__(self) -> bool:
        return self.passed


@contextmanager
def check(exercise: str) -> Iterator[_Outcome]:
    """Run the ``assert`` statements of an exercise's self-check and report, never raise.

    An ``AssertionError``'s message is the explanation shown to the learner; any other error
    (a ``NameError`` for a function not yet defined, say) is reported with its type and line.
    """
    outcome = _Outcome()
    try:
        yield outcome
    except AssertionError as exc:
        outcome.reason = str(exc) or "a check failed (the assert has no message)"
    except Exception as exc:  # noqa: BLE001 - report any error in the learner's code, never crash the notebook
        where = traceback.extract_tb(exc.__traceback__)[-1]
        outcome.reason = f"your code raised {type(exc).__name__}: {exc} (line {where.lineno})"
    else:
        outcome.passed = True
    if outcome.passed:
        print(f"✅ Exercise {exercise}: correct.")
    else:
        print(f"❌ Exercise {exercise}: not yet. {outcome.reason}")
    _log(exercise, outcome)


def _log(exercise: str, outcome: _Outcome) -> None:
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as sink:
            sink.write(json.dumps({"exercise": exercise, "passed": outcome.passed, "reason": outcome.reason}) + "\n")
