"""Run a function in a fresh, forked process, as a restarted worker runs it (the labs' restart and crash tests).

::

    from coursekit.processes import in_a_fresh_process, Died
    read = in_a_fresh_process(count_paid, topic, group, db_path, max_events=20)

Nothing the call keeps in Python memory survives it: a consumer that remembers what it processed in a
global, a mutable default argument or a cache is caught. The child inherits the parent's state at the
fork (imports, the tracking URI, the time zone), runs the call, sends back its value (JSON data) and what it
printed, and exits without running anything else. ``prepare()``, when given, runs in the child first (a
test's hook: a producer that dies at a chosen moment). A child that exits without answering (``os._exit``,
a signal) raises :class:`Died` with its exit status. POSIX only (``os.fork``).

:func:`tied_to_this_process` is the other half: the command line of an engine's server (a model server, a
function, Azurite, the Kubernetes control plane, the MQTT broker) that ends when the process that started it
dies, so a killed kernel leaves no server behind.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Runs in the server's own process before it becomes the server: on Linux, ask for SIGTERM when the process that
# started it dies (PR_SET_PDEATHSIG), give up if that has already happened, then exec the command.
_LAUNCHER = """\
import ctypes, os, signal, sys
if sys.platform.startswith("linux"):
    ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    if os.getppid() != int(sys.argv[1]):
        sys.exit(f"the process that started {sys.argv[2]} has already exited")
os.execv(sys.argv[3], sys.argv[3:])
"""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free on ``host`` now (one the operating system picks), for an engine's server."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path | None, lines: int = 15) -> str:
    """The last ``lines`` lines of an engine's log file (for the error that says why it did not start)."""
    if path is None or not path.is_file():
        return "(no log written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def tied_to_this_process(command: Sequence[str], what: str) -> list[str]:
    """``command`` (its first item an absolute path) as a command line that gets SIGTERM when this process dies
    (Linux; elsewhere it just runs). ``what`` names it in the message of one that starts too late."""
    return [sys.executable, "-c", _LAUNCHER, str(os.getpid()), what, *command]


class Died(RuntimeError):
    """The child process ended without sending its value back."""

    def __init__(self, name: str, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        how = f"exit status {code}" if code >= 0 else f"signal {-code}"
        super().__init__(f"{name} died in its process ({how}) before it returned")
        self.exit_code = code


def in_a_fresh_process(function: Callable[..., Any], *args: Any, prepare: Callable[[], None] | None = None,
                       **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` in a forked child process; its value (JSON data). What the child printed is
    printed here; its exception is raised here as a ``RuntimeError`` holding the child's traceback."""
    name = getattr(function, "__name__", repr(function))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: run the call, send back its value, and exit without running anything else
        os.close(read_end)
        sys.stdout = sys.stderr = printed = io.StringIO()
        try:
            if prepare is not None:
                prepare()
            reply = {"value": function(*args, **kwargs)}
            json.dumps(reply)
        except BaseException:  # noqa: BLE001 - raised again in the parent
            reply = {"error": traceback.format_exc()}
        reply["printed"] = printed.getvalue()
        with os.fdopen(write_end, "w") as pipe:
            pipe.write(json.dumps(reply))
        os._exit(0)
    os.close(write_end)
    chunks = []
    try:
        with os.fdopen(read_end, "rb") as pipe:
            while chunk := pipe.read(65536):
                chunks.append(chunk)
    finally:
        if not chunks:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if not chunks:
        raise Died(name, status)
    reply = json.loads(b"".join(chunks))
    print(reply["printed"], end="")
    if "error" in reply:
        raise RuntimeError(f"{name} failed in its process:\n{reply['error']}")
    return reply["value"]


CRASH_EXIT = 17   # the exit status of a process that :func:`producer_dies_after` ended


def producer_dies_after(n: int, *namespaces: dict[str, Any]) -> None:
    """A ``prepare`` hook for :func:`in_a_fresh_process`: a crash just after a record reached Kafka's log.

    ``confluent_kafka.Producer`` (and the name ``Producer`` in each namespace given, such as a function's
    ``__globals__``) becomes a subclass that, once ``n`` records have been produced (``produce`` or
    ``produce_batch``), flushes them and ends the process at once with :data:`CRASH_EXIT`: nothing after it
    runs, and a transaction it had open is left open, as when a worker is killed.
    """
    import confluent_kafka

    class _Dying(confluent_kafka.Producer):
        produced = 0

        def _count(self, records: int) -> None:
            _Dying.produced += records
            if _Dying.produced >= n:
                self.flush(10)   # the records are in the log ...
                os._exit(CRASH_EXIT)   # ... and the process ends before anything else

        def produce(self, *args: Any, **kwargs: Any) -> None:
            super().produce(*args, **kwargs)
            self._count(1)

        def produce_batch(self, topic: str, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
            done = super().produce_batch(topic, messages, *args, **kwargs)
            self._count(len(messages))
            return done

    confluent_kafka.Producer = _Dying
    for namespace in namespaces:
        if "Producer" in namespace:
            namespace["Producer"] = _Dying
