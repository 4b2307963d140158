"""Model serving for the course: MLflow's scoring server for a logged model, or your deployed one.

::

    from coursekit import serving
    server = serving.start("models:/l20-fraud@champion")   # `mlflow models serve` on a free port
    serving.predict(server, frame)                          # POST /invocations, MLflow's scoring protocol
    serving.stop(server)

:func:`start` runs ``mlflow models serve -m <uri> --env-manager local`` in a process group of its own,
with this environment's ``bin`` first on ``PATH`` (MLflow starts ``uvicorn`` by name) and
``MLFLOW_TRACKING_URI`` set to the course's store (:mod:`coursekit.tracking`), so ``models:/`` URIs
resolve. It waits for ``/ping`` and, when the server cannot start, raises an error that names what failed
(a busy port, a server that exited: with the end of its log). The server ends with :func:`stop` (or
:func:`stop_all`), at the latest when the Python process that started it exits, even when that process is
killed (Linux). Its log is ``<state>/serving/server-<port>.log``.

``COURSEKIT_MODEL_SERVER=http://host:port`` names a model server that is already deployed (any server that
speaks MLflow's scoring protocol: ``GET /ping``, ``POST /invocations`` with ``{"dataframe_split": ...}``):
:func:`start` then checks that it answers and returns it, and starts nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from coursekit.config import engine_dir
from coursekit.errors import EngineFailed, EngineUnreachable, PortInUse
from coursekit.kafka import port_free  # on 127.0.0.1, as uvicorn binds it here
from coursekit.processes import free_port, tied_to_this_process
from coursekit.processes import log_tail as tail

if TYPE_CHECKING:
    import pandas as pd
    import requests

SERVER_ENV = "COURSEKIT_MODEL_SERVER"
HOST = "127.0.0.1"
START_TIMEOUT = 120.0
REQUEST_TIMEOUT = 10.0
STOP_GRACE = 10.0



@dataclass
class Server:
    """A model server: one this module started (``process`` is set) or a deployed one (``process`` is None)."""

    url: str
    model_uri: str | None = None
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    started_at: float = field(default_factory=time.monotonic)
    ready_after: float | None = None  #: seconds from :func:`start` to the first successful ``/ping``

    @property
    def external(self) -> bool:
        """True for a server named by ``COURSEKIT_MODEL_SERVER``: not ours to start or stop."""
        return self.process is None

    def running(self) -> bool:
        """True while our server's process is alive (always True for an external server)."""
        return self.process is None or self.process.poll() is None


_ours: list[Server] = []


def server_url() -> str | None:
    """The deployed server named by ``$COURSEKIT_MODEL_SERVER`` (without a trailing ``/``), or ``None``.

    Raises ``ValueError`` when the variable is set but is not an ``http(s)://host[:port]`` URL.
    """
    raw = os.environ.get(SERVER_ENV, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or parts.query:
        raise ValueError(f"{SERVER_ENV}={raw!r} is not a URL like http://host:port; fix it, or unset it to "
                         "start a model server here")
    return raw.rstrip("/")


def bin_dir() -> Path:
    """The directory of this environment's executables (``uvicorn``, ``mlflow``)."""
    return Path(sys.executable).parent


def command(model_uri: str, port: int, *, workers: int = 1) -> list[str]:
    """The ``mlflow models serve`` command line that :func:`start` runs."""
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
            "--host", HOST, "--port", str(port), "--workers", str(workers)]


def environment() -> dict[str, str]:
    """The server's environment: ours, with :func:`bin_dir` first on ``PATH`` and the course's tracking URI."""
    from coursekit import tracking

    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(bin_dir()), env.get("PATH", "")])
    env[tracking.URI_ENV] = tracking.tracking_uri()
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    return env


def ping(url: str, timeout: float = 1.0) -> bool:
    """True when ``url`` answers ``GET /ping`` with 200 within ``timeout`` seconds."""
    import requests

    try:
        return requests.get(f"{url}/ping", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def start(model_uri: str, *, port: int | None = None, timeout: float = START_TIMEOUT, wait: bool = True,
          workers: int = 1) -> Server:
    """Serve ``model_uri`` (``models:/name@alias``, ``runs:/…``, a path) and return the server.

    With ``$COURSEKIT_MODEL_SERVER`` set, that server is returned once it answers, and nothing starts.
    Otherwise ``mlflow models serve`` starts on ``port`` (default: a free one). With ``wait=False`` it
    returns at once, to do other work while the server loads; call :func:`wait_ready` before using it.
    On Linux the server gets SIGTERM when the thread that started it ends (in a notebook: the kernel), so
    start it from a thread that lives as long as the server should.
    """
    external = server_url()
    if external is not None:
        server = Server(url=external, model_uri=model_uri)
        return wait_ready(server, timeout=min(timeout, 15.0)) if wait else server
    if port is None:
        port = free_port()
    elif not port_free(port):
        raise PortInUse(f"port {port} on {HOST} is in use by another program, so the model server cannot "
                        "listen there",
                        f"pass another port (or none: a free one is picked), or stop that program (find it with "
                        f"`ss -ltnp 'sport = :{port}'`)")
    log = engine_dir("serving") / f"server-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(tied_to_this_process(command(model_uri, port, workers=workers), "the model server"),
                                   stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                   env=environment(), cwd=engine_dir("serving"), start_new_session=True)
    server = Server(url=f"http://{HOST}:{port}", model_uri=model_uri, process=process, log=log)
    _ours.append(server)
    return wait_ready(server, timeout=timeout) if wait else server


def wait_ready(server: Server, timeout: float = START_TIMEOUT, *, poll: float = 0.25) -> Server:
    """Wait until ``server`` answers ``/ping``; set and return it with ``ready_after``.

    Raises :class:`~coursekit.errors.PortInUse` if the port was taken meanwhile,
    :class:`~coursekit.errors.EngineFailed` if the server exited (with the end of its log), and
    :class:`~coursekit.errors.EngineUnreachable` after ``timeout`` seconds (our server is then stopped).
    """
    deadline = time.monotonic() + timeout
    while True:
        if ping(server.url, timeout=min(1.0, max(0.1, deadline - time.monotonic()))):
            server.ready_after = time.monotonic() - server.started_at
            return server
        if server.process is not None and server.process.poll() is not None:
            _ours[:] = [s for s in _ours if s is not server]
            end = tail(server.log)
            if "address already in use" in end.lower():
                raise PortInUse(f"another program took the model server's port ({server.url}) while it started",
                                "start it again: a free port is picked")
            raise EngineFailed(f"the model server (`mlflow models serve -m {server.model_uri}`) exited with code "
                               f"{server.process.returncode} during start-up. Last lines of its log:\n{end}",
                               f"read {server.log}; check that the model URI resolves "
                               "(`mlflow.pyfunc.load_model(uri)` in a notebook); `coursekit doctor` checks the set-up")
        if time.monotonic() >= deadline:
            if server.external:
                raise EngineUnreachable(f"no model server answered {server.url}/ping within {timeout:.0f} s",
                                        f"check that it is up and reachable from here, or unset {SERVER_ENV} to "
                                        "start one in this notebook")
            stop(server)
            raise EngineUnreachable(f"the model server did not answer {server.url}/ping within {timeout:.0f} s. "
                                    f"Last lines of its log:\n{tail(server.log)}",
                                    "the machine may be short of memory or CPU: close other notebooks "
                                    "(`coursekit status`), then start it again")
        time.sleep(poll)


def predict(server: Server | str, frame: pd.DataFrame, *, timeout: float = REQUEST_TIMEOUT,
            session: requests.Session | None = None) -> list[Any]:
    """Score ``frame`` on ``server`` (a :class:`Server` or its URL): its ``predictions``, one per row.

    The request is MLflow's scoring protocol, ``POST /invocations`` with ``{"dataframe_split": …}``.
    Pass a ``requests.Session`` to reuse its connection (keep-alive) across calls. HTTP errors raise
    ``requests.HTTPError``; an unreachable or slow server raises ``requests.ConnectionError`` or
    ``requests.Timeout``.
    """
    import requests

    url = server.url if isinstance(server, Server) else server.rstrip("/")
    payload = {"dataframe_split": frame.to_dict(orient="split", index=False)}
    response = (session or requests).post(f"{url}/invocations", json=payload, timeout=timeout)
    response.raise_for_status()
    return list(response.json()["predictions"])


def stop(server: Server) -> bool:
    """Stop a server this module started (SIGTERM to its process group, SIGKILL after a grace period).

    Returns ``True`` if it was running. A deployed server (``COURSEKIT_MODEL_SERVER``) is left alone.
    """
    _ours[:] = [s for s in _ours if s is not server]
    process = server.process
    if process is None or process.poll() is not None:
        return False
    group = process.pid if _leads_group(process.pid) else None  # start() gives it a group, uvicorn in it
    _signal(process, group, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        _signal(process, group, signal.SIGKILL)
        process.wait(timeout=STOP_GRACE)
    if group is not None:  # uvicorn shuts down on its own SIGTERM: give it the grace period, then kill it
        deadline = time.monotonic() + STOP_GRACE
        with contextlib.suppress(ProcessLookupError):
            while time.monotonic() < deadline:
                os.killpg(group, 0)  # raises once no process of the group is left
                time.sleep(0.05)
            os.killpg(group, signal.SIGKILL)
    return True


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _signal(process: subprocess.Popen[bytes], group: int | None, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group is not None:
            os.killpg(group, signum)
        else:
            process.send_signal(signum)


def stop_all() -> int:
    """Stop every server this Python process started and has not stopped yet; return how many were running.

    Runs by itself when the process exits. A notebook calls it before starting a server again, so that
    running a cell twice does not leave a second 0.5 GB server behind.
    """
    stopped = 0
    for server in list(_ours):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            stopped += stop(server)
    return stopped


atexit.register(stop_all)


def check() -> tuple[bool, str, str]:
    """For ``coursekit doctor``: ``(ok, what it found, the fix)`` about serving models."""
    try:
        external = server_url()
    except ValueError as exc:
        return False, str(exc), f"set {SERVER_ENV} to http://host:port, or unset it"
    if external is not None:
        if ping(external, timeout=5.0):
            return True, f"deployed model server at {external} answers /ping", ""
        return (False, f"{SERVER_ENV}={external} does not answer /ping",
                f"check that the server is up and reachable from here, or unset {SERVER_ENV} to start one locally")
    uvicorn = bin_dir() / "uvicorn"
    if not os.access(uvicorn, os.X_OK):
        return (False, f"no uvicorn in {bin_dir()} (`mlflow models serve` starts it by name)",
                "run `./course setup` to reinstall the locked packages")
    import importlib.util

    spec = importlib.util.find_spec("mlflow")  # finds the package without importing it
    origin = Path(spec.origin).parent if spec is not None and spec.origin else None
    found = origin is not None and (origin / "pyfunc" / "scoring_server" / "__init__.py").is_file()
    if not found:
        return False, "MLflow's scoring server is not installed", "run `./course setup` to reinstall the packages"
    return True, f"`mlflow models serve` can start here (uvicorn at {uvicorn}); logs in {engine_dir('serving')}", ""

