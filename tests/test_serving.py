"""The model server of lesson 20: its URL and environment handling, its errors, and one real start."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest

from coursekit import serving, tracking
from coursekit.errors import EngineFailed, EngineUnreachable, PortInUse


class _Scoring(BaseHTTPRequestHandler):
    """A stand-in for a deployed server speaking MLflow's scoring protocol: scores each row as its ``x``."""

    received: ClassVar[list[dict[str, object]]] = []

    def do_GET(self) -> None:
        self._reply(200 if self.path in ("/ping", "/health") else 404, {})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append(body)
        split = body["dataframe_split"]
        column = split["columns"].index("x")
        self._reply(200, {"predictions": [row[column] * 2 for row in split["data"]]})

    def _reply(self, status: int, body: dict[str, object]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A scoring server on a free port, named by COURSEKIT_MODEL_SERVER (with a trailing slash)."""
    httpd = ThreadingHTTPServer((serving.HOST, 0), _Scoring)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://{serving.HOST}:{httpd.server_address[1]}"
    monkeypatch.setenv(serving.SERVER_ENV, url + "/")
    _Scoring.received = []
    yield url
    httpd.shutdown()
    httpd.server_close()


def test_no_variable_means_no_deployed_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(serving.SERVER_ENV, raising=False)
    assert serving.server_url() is None
    monkeypatch.setenv(serving.SERVER_ENV, "  ")
    assert serving.server_url() is None


@pytest.mark.parametrize("url", ["https://fraud.example.com", "http://10.0.0.5:8080", "http://model:5000/"])
def test_the_variable_names_a_url(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv(serving.SERVER_ENV, url)
    assert serving.server_url() == url.rstrip("/")


@pytest.mark.parametrize("url", ["fraud-model:5000", "ftp://host", "http://", "http://host:notaport",
                                 "http://host:5000/?q=1"])
def test_a_bad_url_is_named(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv(serving.SERVER_ENV, url)
    with pytest.raises(ValueError, match=serving.SERVER_ENV):
        serving.server_url()
    ok, found, fix = serving.check()
    assert not ok and serving.SERVER_ENV in found and "unset" in fix


def test_a_deployed_server_is_used_and_nothing_starts(deployed: str) -> None:
    server = serving.start("models:/l20-fraud@champion")
    assert server.url == deployed and server.external and server.process is None
    assert server.ready_after is not None
    assert serving.predict(server, pd.DataFrame({"id": ["a", "b"], "x": [1.5, 4.0]})) == [3.0, 8.0]
    assert _Scoring.received[-1] == {"dataframe_split": {"columns": ["id", "x"], "data": [["a", 1.5], ["b", 4.0]]}}
    assert serving.predict(deployed + "/", pd.DataFrame({"x": [1]})) == [2], "a URL works as well as a Server"
    assert serving.stop(server) is False, "a deployed server is not ours to stop"
    assert serving.check()[0] is True


def test_a_deployed_server_that_does_not_answer_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://{serving.HOST}:{serving.free_port()}"
    monkeypatch.setenv(serving.SERVER_ENV, dead)
    started = time.monotonic()
    with pytest.raises(EngineUnreachable) as err:
        serving.start("models:/l20-fraud@champion", timeout=1.0)
    assert time.monotonic() - started < 10
    assert dead in err.value.problem and f"unset {serving.SERVER_ENV}" in err.value.fix
    ok, found, _ = serving.check()
    assert not ok and dead in found


def test_a_busy_port_is_refused_before_anything_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(serving.SERVER_ENV, raising=False)
    with socket.socket() as busy:
        busy.bind((serving.HOST, 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert not serving.port_free(port)
        with pytest.raises(PortInUse) as err:
            serving.start("models:/l20-fraud@champion", port=port)
    assert str(port) in err.value.problem and "another port" in err.value.fix
    assert serving._ours == [], "nothing was launched"


def test_the_command_and_its_environment() -> None:
    cmd = serving.command("models:/m@champion", 5123)
    assert cmd[:5] == [sys.executable, "-m", "mlflow", "models", "serve"]
    assert cmd[cmd.index("-m", 2) + 1] == "models:/m@champion"
    assert cmd[cmd.index("--env-manager") + 1] == "local" and cmd[cmd.index("--port") + 1] == "5123"
    env = serving.environment()
    assert env["PATH"].split(":")[0] == str(serving.bin_dir()), "uvicorn is found by name"
    assert env[tracking.URI_ENV] == tracking.tracking_uri(), "models:/ URIs resolve in the course's registry"


def _fake(tmp_path: Path, code: str) -> serving.Server:
    """A Server whose process runs ``code`` instead of MLflow, logging to a file, in a group of its own."""
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-c", code], stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    return serving.Server(url=f"http://{serving.HOST}:{serving.free_port()}", model_uri="models:/x@y",
                          process=process, log=log)


def test_a_server_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    server = _fake(tmp_path, "print('MlflowException: Registered Model with name=x not found'); raise SystemExit(3)")
    with pytest.raises(EngineFailed) as err:
        serving.wait_ready(server, timeout=30)
    assert "exited with code 3" in err.value.problem
    assert "Registered Model with name=x not found" in err.value.problem, "the end of its log"
    assert str(server.log) in err.value.fix


def test_a_port_lost_during_start_up_is_named(tmp_path: Path) -> None:
    server = _fake(tmp_path, "print('ERROR: [Errno 98] error while attempting to bind on address: address already "
                             "in use'); raise SystemExit(1)")
    with pytest.raises(PortInUse, match="took the model server's port"):
        serving.wait_ready(server, timeout=30)


def test_stop_all_stops_what_this_process_started(tmp_path: Path) -> None:
    servers = [_fake(tmp_path, "import time; time.sleep(60)") for _ in range(2)]
    serving._ours.extend(servers)
    serving.stop(servers[0])
    assert serving.stop_all() == 1, "the one still running"
    assert all(s.process is not None and s.process.poll() is not None for s in servers)
    assert serving._ours == [] and serving.stop_all() == 0


def test_a_server_that_never_answers_is_stopped(tmp_path: Path) -> None:
    server = _fake(tmp_path, "import time; time.sleep(60)")
    with pytest.raises(EngineUnreachable, match="did not answer"):
        serving.wait_ready(server, timeout=0.5)
    assert server.process is not None and server.process.poll() is not None, "the hung server was stopped"


def test_check_finds_what_serving_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(serving.SERVER_ENV, raising=False)
    ok, found, fix = serving.check()
    assert ok, (found, fix)
    assert "uvicorn" in found
    monkeypatch.setattr(serving, "bin_dir", lambda: Path("/nonexistent"))
    ok, found, fix = serving.check()
    assert not ok and "uvicorn" in found and "setup" in fix


@pytest.mark.engines
@pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning")  # mlflow.pyfunc's own, on import
def test_mlflow_models_serve_scores_and_stops(tmp_path: Path, isolated_home: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    monkeypatch.delenv(serving.SERVER_ENV, raising=False)
    frame = pd.DataFrame({"amount": [10.0, 20.0, 200.0, 300.0], "new_device": [0.0, 0.0, 1.0, 1.0]})
    model = LogisticRegression().fit(frame, [0, 0, 1, 1])
    path = tmp_path / "model"
    mlflow.sklearn.save_model(model, path, pip_requirements=["scikit-learn"], pyfunc_predict_fn="predict_proba")
    server = serving.start(str(path), timeout=120)
    try:
        assert server.ready_after is not None and server.running()
        assert server.log is not None and server.log.parent == isolated_home / "serving"
        scores = serving.predict(server, frame)
        assert len(scores) == 4 and scores[3][1] > scores[0][1], "probabilities of fraud, highest for the large one"
    finally:
        assert serving.stop(server) is True
    assert server.process is not None and server.process.poll() is not None
    port = int(server.url.rsplit(":", 1)[1])
    assert serving.port_free(port), "uvicorn stopped with the CLI"
    assert not serving.ping(server.url)
