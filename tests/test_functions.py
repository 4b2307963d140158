"""The function runtime of lesson 15: a real functions-framework served and called, its errors, and the trigger."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from coursekit import functions, objectstore
from coursekit.errors import EngineFailed, PortInUse

HANDLERS = '''\
import functions_framework

seen = []

@functions_framework.cloud_event
def record(event):
    seen.append(event["id"])
    print("handled", event["id"], event["type"], event["subject"], event.data["s3"]["object"]["key"], flush=True)

@functions_framework.cloud_event
def poison(event):
    raise ValueError("this file cannot be parsed")
'''


@pytest.fixture
def handlers(tmp_path: Path) -> Path:
    path = tmp_path / "handlers.py"
    path.write_text(HANDLERS)
    return path


@pytest.fixture
def started() -> Iterator[None]:
    yield
    functions.stop_all()


def test_a_function_is_served_called_and_reused(handlers: Path, started: None) -> None:
    fn = functions.start(handlers, "record")
    assert fn.running() and fn.ready_after is not None and 0 < fn.ready_after < functions.START_TIMEOUT
    event = functions.cloud_event("com.brightcart.test", "/tests", {"s3": {"object": {"key": "k"}}},
                                  id="e-1", subject="k")
    for mode in ("binary", "structured"):
        response = functions.send(fn, event, mode=mode)
        assert response.status_code == 200, response.text
    assert functions.start(handlers, "record") is fn, "the same function is reused, not started again"
    cold = functions.start(handlers, "record", fresh=True)
    assert cold is not fn and cold.url != fn.url and cold.ready_after is not None
    assert functions.send(cold, event).status_code == 200
    assert functions.stop(fn) and not fn.running()
    assert not functions.stop(fn), "a stopped function is not stopped twice"
    assert functions.tail(cold.log).count("handled e-1 com.brightcart.test k k") == 1


def test_a_handler_that_crashes_at_import_says_so(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import functions_framework\nraise RuntimeError('no config at import')\n")
    with pytest.raises(EngineFailed) as caught:
        functions.start(broken, "anything")
    assert "exited with code" in caught.value.problem and "no config at import" in caught.value.problem
    assert "fails at import" in caught.value.fix
    with pytest.raises(EngineFailed, match="there is no file"):
        functions.start(tmp_path / "missing.py", "x")


def test_a_taken_port_is_refused(handlers: Path) -> None:
    with socket.socket() as sock:
        sock.bind((functions.HOST, 0))
        sock.listen()
        with pytest.raises(PortInUse) as caught:
            functions.start(handlers, "record", port=sock.getsockname()[1])
    assert "in use" in caught.value.problem and "ss -ltnp" in caught.value.fix


def test_the_s3_adapter_mapping() -> None:
    record = {"eventSource": "aws:s3", "awsRegion": "eu-west-1", "eventTime": "2026-01-01T00:00:00.000Z",
              "eventName": "ObjectCreated:Put", "responseElements": {"x-amz-request-id": "R", "x-amz-id-2": "I"},
              "s3": {"bucket": {"name": "b"}, "object": {"key": "incoming/a+b%3D.csv", "eTag": "e"}}}
    event = functions.s3_record_to_cloudevent(record, fallback_id="m")
    assert (event["id"], event["type"], event["source"], event["subject"]) == (
        "R.I", "com.amazonaws.s3.ObjectCreated:Put", "aws:s3.eu-west-1.b", "incoming/a b=.csv")
    del record["responseElements"]
    assert functions.s3_record_to_cloudevent(record, fallback_id="m")["id"] == "m"


def test_the_trigger_delivers_at_least_once_and_dead_letters(handlers: Path, started: None) -> None:
    objectstore.start("s3")
    s3, sqs = objectstore.client("s3"), objectstore.client("s3", "sqs")
    bucket = objectstore.bucket("l15-test-trigger")
    queue, dlq = functions.notify_queue(bucket, "l15-test-trigger", max_receives=2, visibility_timeout=1,
                                        prefix="incoming/")
    s3.put_object(Bucket=bucket, Key="incoming/a.csv", Body=b"order_id\n1\n")
    s3.put_object(Bucket=bucket, Key="elsewhere/b.csv", Body=b"not for the trigger")
    done = functions.pump(functions.start(handlers, "record"), queue)
    assert [(d.subject, d.attempt, d.ok) for d in done] == [("incoming/a.csv", 1, True)]

    s3.put_object(Bucket=bucket, Key="incoming/bad.csv", Body=b"?")
    failed = functions.pump(functions.start(handlers, "poison"), queue, timeout=15)
    assert [(d.attempt, d.status) for d in failed] == [(1, 500), (2, 500)], "two receives, then the DLQ"
    dead = sqs.receive_message(QueueUrl=dlq).get("Messages", [])
    assert [json.loads(m["Body"])["Records"][0]["s3"]["object"]["key"] for m in dead] == ["incoming%2Fbad.csv"]


def test_check_and_the_deployed_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert functions.check()[0]
    monkeypatch.setenv(functions.URL_ENV, "not a url")
    with pytest.raises(ValueError, match="is not a URL"):
        functions.function_url()
    assert not functions.check()[0]
    monkeypatch.setenv(functions.URL_ENV, f"http://{functions.HOST}:{functions.free_port()}/")
    ok, found, fix = functions.check()
    assert not ok and "does not answer" in found and functions.URL_ENV in fix
