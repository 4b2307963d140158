"""Serverless functions for the course: Google's Functions Framework serving CloudEvents, or your deployed function.

::

    from coursekit import functions
    fn = functions.start("handlers.py", "summarise")   # functions-framework on a free 127.0.0.1 port
    fn.ready_after                                     # the cold start: process start + imports, in seconds
    functions.send(fn, functions.cloud_event("com.example.ping", "/lesson", {"n": 1}))   # POST, binary mode
    queue, dlq = functions.notify_queue("l15-orders", "l15-orders")    # S3 ObjectCreated -> SQS, with a DLQ
    functions.pump(fn, queue)                          # the trigger: SQS -> CloudEvents -> the function
    functions.stop(fn)

=========  ==================================================  =============================================
piece      embedded default (this module starts it)            switch to your own
=========  ==================================================  =============================================
function   ``functions-framework --signature-type cloudevent``  ``COURSEKIT_FUNCTION_URL=https://host/`` (a
           (Python 3.10.2) in a process of its own, on a       deployed Cloud Run function, or any endpoint
           free port of ``127.0.0.1``                          that takes CloudEvents over HTTP)
=========  ==================================================  =============================================

The bucket and the queues are :mod:`coursekit.objectstore`'s S3 (moto's S3 and SQS server, or the real S3 that
``COURSEKIT_S3_ENDPOINT`` names). :func:`start` runs ``python -m functions_framework --source <file> --target <fn>
--signature-type cloudevent --host 127.0.0.1 --port <p>`` in a process group of its own, with the S3 settings in
its environment (``AWS_ENDPOINT_URL_S3`` and keys for the emulator: the handler's ``boto3.client("s3")`` is the
same line that runs in a cloud), waits until it answers HTTP and records ``ready_after``. Its log is
``<state>/functions/<target>-<port>.log``. It stops with :func:`stop`, at the latest when the Python process that
started it exits, even when that process is killed (Linux, ``PR_SET_PDEATHSIG``).

The CloudEvents a trigger sends follow the CloudEvents project's *AWS S3 adapter*
(``type`` = ``com.amazonaws.s3.<eventName>``, ``subject`` = the object key, ``data`` = the S3 record); see
:func:`s3_record_to_cloudevent`. What a real platform adds (scaling to zero and out, concurrency limits, managed
retries, IAM on who may invoke) is in lesson 15.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus, urlsplit

from coursekit.config import engine_dir
from coursekit.errors import EngineFailed, EngineUnreachable, PortInUse
from coursekit.kafka import port_free
from coursekit.processes import free_port, tied_to_this_process
from coursekit.processes import log_tail as tail

if TYPE_CHECKING:
    import requests
    from cloudevents.http import CloudEvent

URL_ENV = "COURSEKIT_FUNCTION_URL"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 30.0
STOP_GRACE = 5.0



@dataclass
class Function:
    """A function endpoint: one this module started (``process`` is set) or a deployed one (``process`` is None)."""

    url: str
    target: str | None = None
    source: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    threads: int | None = None
    settings: tuple[tuple[str, str], ...] = ()
    started_at: float = field(default_factory=time.monotonic)
    ready_after: float | None = None  #: seconds from launch to the first HTTP answer: the cold start

    @property
    def external(self) -> bool:
        """True for the function named by ``COURSEKIT_FUNCTION_URL``: not ours to start or stop."""
        return self.process is None

    def running(self) -> bool:
        """True while our function's process is alive (always True for a deployed function)."""
        return self.process is None or self.process.poll() is None


_ours: list[Function] = []


def function_url() -> str | None:
    """The deployed function named by ``$COURSEKIT_FUNCTION_URL``, or ``None``.

    Raises ``ValueError`` when the variable is set but is not an ``http(s)://host[:port][/path]`` URL.
    """
    raw = os.environ.get(URL_ENV, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError(f"{URL_ENV}={raw!r} is not a URL like https://host/; fix it, or unset it to run the "
                         "function here")
    return raw


def command(source: str | Path, target: str, port: int) -> list[str]:
    """The ``functions-framework`` command line that :func:`start` runs (the CLI of functions-framework 3.10)."""
    return [sys.executable, "-m", "functions_framework", "--source", str(source), "--target", target,
            "--signature-type", "cloudevent", "--host", HOST, "--port", str(port)]


def s3_environment() -> dict[str, str]:
    """The environment that points ``boto3.client("s3")`` in a function at the course's S3.

    For the emulator: its endpoint (``AWS_ENDPOINT_URL_S3``, read by botocore), its region and the emulator's
    dummy keys. For a real deployment only the endpoint, if one is named: credentials come from the SDK's chain.
    """
    from coursekit import objectstore

    store = objectstore.start("s3")
    options = objectstore.storage_options("s3")
    env: dict[str, str] = {}
    if store.endpoint:
        env["AWS_ENDPOINT_URL_S3"] = store.endpoint
    if not store.external:
        env.update(AWS_ACCESS_KEY_ID=options["key"], AWS_SECRET_ACCESS_KEY=options["secret"],
                   AWS_DEFAULT_REGION=options["client_kwargs"]["region_name"])
    return env


def _environment(threads: int | None, extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(s3_environment())
    env["WORKERS"] = "1"  # one gunicorn worker process: the unit a platform scales out
    env["PYTHONUNBUFFERED"] = "1"
    if threads is not None:
        env["THREADS"] = str(threads)  # requests one instance serves at once (its concurrency)
    env.update(extra)
    return env


def answers(url: str, timeout: float = 1.0) -> bool:
    """True when an HTTP server answers ``GET url`` within ``timeout`` (a CloudEvent function answers 405)."""
    import requests

    try:
        requests.get(url, timeout=timeout)
    except requests.RequestException:
        return False
    return True


def start(source: str | Path, target: str, *, port: int | None = None, threads: int | None = None,
          env: Mapping[str, str] | None = None, fresh: bool = False, timeout: float = START_TIMEOUT) -> Function:
    """Serve ``target`` of the Python file ``source`` as a CloudEvent function and return it once it answers.

    With ``$COURSEKIT_FUNCTION_URL`` set, that deployed function is returned once it answers, and nothing starts.
    Otherwise a function this kernel already runs with the same source, target, ``threads`` and ``env`` is
    returned (running a cell twice starts nothing), unless ``fresh=True``: then a new process starts, which is a
    cold start. ``threads`` caps the requests it serves at once (default: functions-framework's, 4 per CPU);
    ``env`` adds environment variables. Raises :class:`~coursekit.errors.PortInUse`,
    :class:`~coursekit.errors.EngineFailed` (the process exited: the handler failed to import, say; with the end
    of its log) or :class:`~coursekit.errors.EngineUnreachable`.
    """
    external = function_url()
    if external is not None:
        return wait_ready(Function(url=external, target=target), timeout=min(timeout, 15.0))
    source = Path(source).resolve()
    settings = tuple(sorted((env or {}).items()))
    if not fresh:
        for fn in _ours:
            if (fn.source, fn.target, fn.threads, fn.settings) == (source, target, threads, settings) and fn.running():
                return fn
    if not source.is_file():
        raise EngineFailed(f"there is no file {source} to serve the function {target!r} from",
                           "write the handler's file first, or pass the right path")
    if port is None:
        port = free_port()
    elif not port_free(port):
        raise PortInUse(f"port {port} on {HOST} is in use by another program, so the function cannot listen there",
                        f"pass another port (or none: a free one is picked), or stop that program (find it with "
                        f"`ss -ltnp 'sport = :{port}'`)")
    log = engine_dir("functions") / f"{target}-{port}.log"
    started_at = time.monotonic()
    with log.open("wb") as sink:
        process = subprocess.Popen(tied_to_this_process(command(source, target, port), "the function"),
                                   stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                   env=_environment(threads, env or {}), cwd=source.parent, start_new_session=True)
    fn = Function(url=f"http://{HOST}:{port}/", target=target, source=source, process=process, log=log,
                  threads=threads, settings=settings, started_at=started_at)
    _ours.append(fn)
    return wait_ready(fn, timeout=timeout)


def wait_ready(fn: Function, timeout: float = START_TIMEOUT, *, poll: float = 0.01) -> Function:
    """Wait until ``fn`` answers HTTP; set and return it with ``ready_after`` (polled every ``poll`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        if answers(fn.url, timeout=min(1.0, max(0.1, deadline - time.monotonic()))):
            fn.ready_after = time.monotonic() - fn.started_at
            return fn
        if fn.process is not None and fn.process.poll() is not None:
            _ours[:] = [f for f in _ours if f is not fn]
            end = tail(fn.log)
            if "in use" in end.lower():
                raise PortInUse(f"another program took the function's port ({fn.url}) while it started",
                                "start it again: a free port is picked")
            raise EngineFailed(f"the function {fn.target!r} of {fn.source} exited with code {fn.process.returncode} "
                               f"during start-up, before it answered. Last lines of its log:\n{end}",
                               f"a handler that fails at import (a syntax error, a missing package, code at module "
                               f"level that raises) stops the function before it serves: fix it, and read {fn.log}")
        if time.monotonic() >= deadline:
            if fn.external:
                raise EngineUnreachable(f"no function answered {fn.url} within {timeout:.0f} s",
                                        f"check that it is deployed and reachable from here, or unset {URL_ENV} to "
                                        "run it in this notebook")
            stop(fn)
            raise EngineUnreachable(f"the function did not answer {fn.url} within {timeout:.0f} s. Last lines of its "
                                    f"log:\n{tail(fn.log)}",
                                    "the machine may be short of memory or CPU: close other notebooks, then start it "
                                    "again")
        time.sleep(poll)


def cloud_event(type: str, source: str, data: Any, *, id: str | None = None, subject: str | None = None,
                time: str | None = None) -> CloudEvent:
    """A CloudEvents 1.0 event (``id`` and ``time`` are filled in when not given)."""
    from cloudevents.http import CloudEvent

    attributes = {"type": type, "source": source, "datacontenttype": "application/json"}
    for name, value in (("id", id), ("subject", subject), ("time", time)):
        if value is not None:
            attributes[name] = value
    return CloudEvent(attributes, data)


def send(fn: Function | str, event: CloudEvent, *, mode: str = "binary", timeout: float = REQUEST_TIMEOUT,
         session: requests.Session | None = None) -> requests.Response:
    """POST ``event`` to ``fn`` (a :class:`Function` or a URL) in CloudEvents' HTTP ``binary`` or ``structured``
    mode; return the response (2xx: handled; 500: the handler raised). Errors of the connection raise."""
    import requests
    from cloudevents.conversion import to_binary, to_structured

    if mode not in ("binary", "structured"):
        raise ValueError(f"mode is 'binary' (attributes in ce-* headers) or 'structured' (one JSON document), "
                         f"not {mode!r}")
    headers, body = (to_binary if mode == "binary" else to_structured)(event)
    url = fn.url if isinstance(fn, Function) else fn
    return (session or requests).post(url, data=body, headers=headers, timeout=timeout)


def s3_record_to_cloudevent(record: Mapping[str, Any], *, fallback_id: str) -> CloudEvent:
    """One record of an S3 event notification as a CloudEvent, by the CloudEvents project's AWS S3 adapter.

    ``id`` is ``x-amz-request-id.x-amz-id-2`` from the record's ``responseElements`` (what real S3 sends; the
    same for every redelivery of one notification); moto's records have none, so ``fallback_id`` (the SQS message
    id, also the same on every redelivery of one message) stands in. The object key is URL-decoded.
    """
    elements = record.get("responseElements") or {}
    request_id, id2 = elements.get("x-amz-request-id"), elements.get("x-amz-id-2")
    event_id = f"{request_id}.{id2}" if request_id and id2 else fallback_id
    obj = dict(record["s3"]["object"])
    obj["key"] = unquote_plus(obj["key"])
    data = {**record, "s3": {**record["s3"], "object": obj}}
    return cloud_event(f"com.amazonaws.s3.{record['eventName']}",
                       f"{record['eventSource']}.{record['awsRegion']}.{record['s3']['bucket']['name']}",
                       data, id=event_id, subject=obj["key"], time=record.get("eventTime"))


def notify_queue(bucket: str, queue: str, *, max_receives: int = 3, visibility_timeout: int = 30,
                 prefix: str = "") -> tuple[str, str]:
    """Send ``bucket``'s ``s3:ObjectCreated:*`` notifications (keys under ``prefix``) to the SQS queue ``queue``,
    with a dead-letter queue ``<queue>-dlq`` that takes a message after ``max_receives`` receives.

    Creates the bucket and both queues if needed (leftovers of an earlier run are emptied), and removes the
    ``s3:TestEvent`` S3 sends when the configuration is set. Returns the queue's and the DLQ's URLs.
    """
    from coursekit import objectstore

    s3, sqs = objectstore.client("s3", "s3"), objectstore.client("s3", "sqs")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        location = {"LocationConstraint": s3.meta.region_name} if s3.meta.region_name != "us-east-1" else None
        s3.create_bucket(Bucket=bucket, **({"CreateBucketConfiguration": location} if location else {}))
    dlq_url = sqs.create_queue(QueueName=f"{queue}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {"Version": "2012-10-17", "Statement": [{  # who may send: S3, for this bucket only (real AWS checks it)
        "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": arn, "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}}}]}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={
        "VisibilityTimeout": str(visibility_timeout), "Policy": json.dumps(policy),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)})})
    for leftover in (url, dlq_url):
        sqs.purge_queue(QueueUrl=leftover)
    rule: dict[str, Any] = {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}
    if prefix:
        rule["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [rule]})
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        if json.loads(message["Body"]).get("Event") == "s3:TestEvent":
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return url, dlq_url


@dataclass(frozen=True)
class Delivery:
    """One attempt of the trigger to deliver one event: what was sent, what came back, how long it took."""

    event_id: str
    subject: str
    attempt: int  #: SQS's ApproximateReceiveCount: 1 for the first delivery, 2 for the first retry, ...
    status: int  #: the HTTP status, or 0 when the request failed (refused, timed out)
    seconds: float

    @property
    def ok(self) -> bool:
        """True when the function answered 2xx (the trigger then deletes the message)."""
        return 200 <= self.status < 300


def _deliver_one(fn: Function | str, sqs: Any, queue_url: str, message: Mapping[str, Any], mode: str,
                 ack: bool) -> list[Delivery]:
    import requests

    body = json.loads(message["Body"])
    attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    done = []
    for record in body.get("Records", []):  # S3 sends one record per message; an s3:TestEvent has none
        event = s3_record_to_cloudevent(record, fallback_id=message["MessageId"])
        began = time.perf_counter()
        try:
            status = send(fn, event, mode=mode).status_code
        except requests.RequestException:
            status = 0
        done.append(Delivery(event["id"], event["subject"], attempt, status, time.perf_counter() - began))
    if ack and all(d.ok for d in done):  # at-least-once: the message goes only once the function has handled it
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return done


def pump(fn: Function | str, queue_url: str, *, workers: int = 1, mode: str = "binary", timeout: float = 30.0,
         ack: bool = True) -> list[Delivery]:
    """The trigger: receive S3 notifications from the SQS queue, POST each as a CloudEvent to ``fn``, and delete
    a message only when the function answered 2xx; until the queue is empty (nothing visible nor in flight) or
    ``timeout`` seconds have passed. A failed message comes back after the queue's visibility timeout, and the
    redrive policy moves it to the dead-letter queue after ``maxReceiveCount`` receives. ``workers`` events are
    delivered at once. ``ack=False`` deletes nothing: a trigger that dies after the call, before its delete.
    Returns every delivery attempt, in the order they finished.
    """
    from coursekit import objectstore

    sqs = objectstore.client("s3", "sqs")
    deadline, deliveries = time.monotonic() + timeout, []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while time.monotonic() < deadline:
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                           AttributeNames=["ApproximateReceiveCount"]).get("Messages", [])
            if messages:
                for done in pool.map(lambda m: _deliver_one(fn, sqs, queue_url, m, mode, ack), messages):
                    deliveries.extend(done)
                continue
            counts = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            if not ack or not any(int(n) for n in counts.values()):
                break
            time.sleep(0.1)  # messages in flight come back after the visibility timeout
    return deliveries


def stop(fn: Function) -> bool:
    """Stop a function this module started (SIGTERM to its process group, SIGKILL after a grace period).

    Returns ``True`` if it was running. A deployed function (``COURSEKIT_FUNCTION_URL``) is left alone.
    """
    _ours[:] = [f for f in _ours if f is not fn]
    process = fn.process
    if process is None or process.poll() is not None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)  # gunicorn's arbiter stops its worker on SIGTERM
    try:
        process.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_GRACE)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # a worker left behind in the group
    return True


def stop_all() -> int:
    """Stop every function this Python process started; return how many were running (runs at exit too)."""
    stopped = 0
    for fn in list(_ours):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            stopped += stop(fn)
    return stopped


atexit.register(stop_all)


def check() -> tuple[bool, str, str]:
    """For ``coursekit doctor``: ``(ok, what it found, the fix)`` about running functions."""
    try:
        external = function_url()
    except ValueError as exc:
        return False, str(exc), f"set {URL_ENV} to https://host/, or unset it"
    if external is not None:
        if answers(external, timeout=5.0):
            return True, f"deployed function at {external} answers HTTP", ""
        return (False, f"{URL_ENV}={external} does not answer",
                f"check that the function is deployed and reachable from here, or unset {URL_ENV} to run it locally")
    import importlib.util

    missing = [name for name in ("functions_framework", "cloudevents", "gunicorn")
               if importlib.util.find_spec(name) is None]  # finds the packages without importing them
    if missing:
        return False, f"not installed: {', '.join(missing)}", "run `./course setup` to reinstall the locked packages"
    return True, f"functions-framework can serve CloudEvent functions here; logs in {engine_dir('functions')}", ""
