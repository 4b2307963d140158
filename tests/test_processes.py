"""coursekit.processes: calls in a fresh forked process, and a producer that dies after n records."""

from __future__ import annotations

import os

import pytest

from coursekit import kafka
from coursekit.processes import CRASH_EXIT, Died, in_a_fresh_process, producer_dies_after

_SEEN: list[int] = []


def _remember(x: int) -> list[int]:
    _SEEN.append(x)
    return list(_SEEN)


def test_nothing_kept_in_memory_survives_the_call() -> None:
    assert in_a_fresh_process(_remember, 1) == [1]
    assert in_a_fresh_process(_remember, 2) == [2], "the second call starts from the parent's memory"
    assert _SEEN == []


def test_errors_printing_and_deaths_reach_the_parent(capsys: pytest.CaptureFixture[str]) -> None:
    assert in_a_fresh_process(lambda: print("hello") or 3) == 3
    assert capsys.readouterr().out == "hello\n"
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        in_a_fresh_process(lambda: 1 / 0)
    with pytest.raises(Died) as died:
        in_a_fresh_process(os._exit, 5)
    assert died.value.exit_code == 5
    with pytest.raises(RuntimeError, match="not JSON serializable"):
        in_a_fresh_process(object)


@pytest.mark.engines
def test_a_producer_dies_just_after_its_nth_record_reached_the_log(bootstrap: str) -> None:
    topic = kafka.fresh_topic("processes.dying", 1)

    def produce_five() -> int:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": bootstrap})
        for i in range(5):
            producer.produce(topic, value=str(i).encode())
        producer.flush(10)
        return 5

    try:
        with pytest.raises(Died) as died:
            in_a_fresh_process(produce_five, prepare=lambda: producer_dies_after(3))
        assert died.value.exit_code == CRASH_EXIT
        assert [r.value for r in kafka.read_all(topic)] == [0, 1, 2], "three records reached the log, no more"
    finally:
        kafka.delete_topics([topic])
