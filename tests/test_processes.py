"""coursekit.processes: calls in a fresh forked process, and a producer that dies after n records."""

from __future__ import annotations

import os
import subprocess
import sys
import time

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


STARTER = """
import subprocess, sys, time
from coursekit.processes import tied_to_this_process
server = subprocess.Popen(tied_to_this_process(["/bin/sleep", "60"], "a sleeper"))
print(server.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_tied_server_ends_when_the_process_that_started_it_is_killed() -> None:
    import psutil

    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    server = psutil.Process(int(starter.stdout.readline()))
    deadline = time.monotonic() + 10
    while server.cmdline()[:1] != ["/bin/sleep"] and time.monotonic() < deadline:
        time.sleep(0.05)  # the launcher sets PR_SET_PDEATHSIG, then becomes the command itself (exec)
    assert server.cmdline()[:1] == ["/bin/sleep"], server.cmdline()
    starter.kill()  # as a kernel is killed: no clean-up of its own runs
    starter.wait()
    starter.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if server.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    else:
        server.kill()
        raise AssertionError("the server outlived the process that started it")
