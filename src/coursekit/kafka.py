"""Apache Kafka for the course: an embedded single-node KRaft broker, or your own cluster.

One way to get a broker::

    from coursekit import kafka
    bootstrap = kafka.bootstrap_servers()      # starts the embedded broker if needed

With ``KAFKA_BOOTSTRAP_SERVERS`` set, that cluster is used instead and nothing is started.
The embedded broker is a real Apache Kafka 4 (``kafka.Kafka`` from Maven Central jars) on the
machine's Java 17, in combined broker+controller KRaft mode, with a 256 MB heap. It is shared by
every kernel of the user: started by the first notebook that needs it, reused while alive,
restarted when dead, and stopped by ``coursekit stop kafka``. It listens on 19092 (and 19093), or, when
another program or another learner's broker has those, on a free pair it finds and keeps
(``COURSEKIT_KAFKA_PORT`` fixes the port). Its files live in ``<state>/kafka``: ``broker.json`` (pid and
ports), ``port``, ``server.properties``, ``logs/``, ``data/``.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from coursekit import jars, naming
from coursekit.config import engine_dir, env_int, quiet_native_output
from coursekit.errors import EngineFailed, EngineUnreachable, PortInUse
from coursekit.java import log4j2_to_file, require_java

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
PORT_ENV = "COURSEKIT_KAFKA_PORT"
DEFAULT_PORT = 19092
HOST = "127.0.0.1"
HEAP = "256m"
START_TIMEOUT = 90.0
REACH_TIMEOUT = 10.0

_JVM_FLAGS = [
    f"-Xmx{HEAP}", "-Xms64m", "-XX:+UseSerialGC", "-XX:MaxMetaspaceSize=128m",
    "-XX:ReservedCodeCacheSize=48m", "-XX:TieredStopAtLevel=1", "-Xss512k",
    "-Djava.awt.headless=true",
]


@dataclass(frozen=True)
class Broker:
    """A running embedded broker, as recorded in ``broker.json``."""

    pid: int
    port: int
    controller_port: int
    log_dir: str

    @property
    def bootstrap(self) -> str:
        """The ``host:port`` clients connect to."""
        return f"{HOST}:{self.port}"


def _home() -> Path:
    return engine_dir("kafka")


def _record_path() -> Path:
    return _home() / "broker.json"


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def port_free(port: int) -> bool:
    """True when nothing listens on ``port`` of 127.0.0.1 (as the broker would bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # the JVM listens with SO_REUSEADDR, so connections left in TIME_WAIT do not block it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _is_our_broker(pid: int) -> bool:
    """True when ``pid`` is a live (not zombie) ``kafka.Kafka`` JVM of this state directory."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = proc.cmdline()
    except psutil.Error:
        return False
    return "kafka.Kafka" in cmdline and any(str(_home()) in arg for arg in cmdline)


def status() -> Broker | None:
    """Return the embedded broker if it is running and accepting connections, else ``None``."""
    path = _record_path()
    if not path.is_file():
        return None
    try:
        broker = Broker(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None
    if _is_our_broker(broker.pid) and _port_open(HOST, broker.port):
        return broker
    return None


@contextlib.contextmanager
def _start_lock() -> Iterator[None]:
    with open(_home() / "start.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cluster_id() -> str:
    """This broker's KRaft cluster id: 22 characters of URL-safe base64, which may begin with "-"."""
    path = _home() / "cluster.id"
    if not path.is_file():
        path.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
    return path.read_text().strip()


def _server_properties(port: int, controller_port: int, data: Path) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "background.threads": "2",
        "log.cleaner.dedupe.buffer.size": str(4 * 1024 * 1024),
        "log.segment.bytes": str(16 * 1024 * 1024),
        "log.retention.check.interval.ms": "5000",
        "log.cleaner.backoff.ms": "1000",
        "auto.create.topics.enable": "true",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())




def _tail(path: Path, lines: int = 20) -> str:
    if not path.is_file():
        return "(no log written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _java_command(java: Path, main: str, *args: str) -> list[str]:
    classpath = str(jars.jar_dir("kafka-broker") / "*")
    log4j = _home() / "log4j2.properties"
    return [str(java), *_JVM_FLAGS, f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={_home() / 'logs'}", "-cp", classpath, main, *args]


def _choose_port(taken: frozenset[int] = frozenset()) -> int:
    """The broker's port (it also uses the next one): ``$COURSEKIT_KAFKA_PORT`` if set, else the one this
    state directory used before, else 19092, else a free pair found here (never one of ``taken``). The
    choice is recorded, so a learner keeps their port across restarts, and many learners on one machine
    each get their own.
    """
    if os.environ.get(PORT_ENV, "").strip():
        return env_int(PORT_ENV, DEFAULT_PORT)
    record = _home() / "port"
    candidates = [int(record.read_text())] if record.is_file() and record.read_text().strip().isdigit() else []
    candidates.append(DEFAULT_PORT)

    def usable(p: int) -> bool:
        return p not in taken and port_free(p) and port_free(p + 1)

    port = next((p for p in candidates if usable(p)), None)
    if port is None:
        import random

        rng = random.Random()  # noqa: S311 - a port, not a secret
        port = next((p for p in (rng.randrange(20000, 32000) for _ in range(200))  # below the ephemeral range
                     if usable(p)), candidates[-1])
    record.write_text(str(port))
    return port


def start(timeout: float = START_TIMEOUT) -> Broker:
    """Start the embedded broker, or return the one already running. Safe to call concurrently.

    Learners on one machine each have their own state directory and so their own lock: two of them may
    pick the same free port at the same moment. Only one JVM binds it; the other must not take the
    winner's broker for its own (it would share its topics), so readiness means "a broker with *this*
    state directory's cluster id answers", and the loser starts again on another port.
    """
    with _start_lock():
        running = status()
        if running is not None:
            return running
        java = require_java()
        jars.require("kafka-broker")
        deadline = time.monotonic() + timeout
        taken: set[int] = set()
        while True:
            port = _choose_port(frozenset(taken))
            broker = _launch(java, port, deadline, timeout)
            if broker is not None:
                _record_path().write_text(json.dumps(asdict(broker)))
                return broker
            taken.add(port)  # another learner's broker won the port while ours started
            if os.environ.get(PORT_ENV, "").strip() or len(taken) >= 3:
                raise PortInUse(
                    f"port {port} on {HOST} was taken by another Kafka broker while this one started",
                    f"start it again; or set {PORT_ENV} to a port nobody else uses (the broker uses it "
                    f"and the next one), or {BOOTSTRAP_ENV} to use a Kafka cluster you already run",
                )


def _launch(java: Path, port: int, deadline: float, timeout: float) -> Broker | None:
    """Start a broker on ``port``: the broker once it is ready, ``None`` if another broker took the port meanwhile."""
    controller_port = port + 1
    for needed in (port, controller_port):
        if not port_free(needed):
            raise PortInUse(
                f"port {needed} on {HOST} is in use by another program, so the embedded Kafka broker "
                f"cannot listen there",
                f"stop that program (find it with `ss -ltnp 'sport = :{needed}'`), or set {PORT_ENV} "
                f"to a free port (the broker uses it and the next one), or set {BOOTSTRAP_ENV} "
                "to use a Kafka cluster you already run",
            )
    home = _home()
    data, logs = home / "data", home / "logs"
    logs.mkdir(exist_ok=True)
    props = home / "server.properties"
    props.write_text(_server_properties(port, controller_port, data))
    (home / "log4j2.properties").write_text(
        log4j2_to_file(logs / "server.log", level="info", loggers={"state.change.logger": "warn"}))
    out = logs / "stdout.log"
    ours = _cluster_id()
    if not (data / "meta.properties").is_file():
        formatted = subprocess.run(
            _java_command(java, "kafka.tools.StorageTool", "format", f"--cluster-id={ours}",
                          "-c", str(props), "--ignore-formatted"),
            capture_output=True, text=True, timeout=120, check=False)
        if formatted.returncode != 0:
            raise EngineFailed(f"formatting the Kafka log directory failed:\n{formatted.stderr[-2000:]}",
                               f"remove {data} and try again; see {out}")
    pid = _launch_detached(_java_command(java, "kafka.Kafka", str(props)), out, home)
    broker = Broker(pid=pid, port=port, controller_port=controller_port, log_dir=str(logs))
    while time.monotonic() < deadline:
        answering = _cluster_of(broker.bootstrap, 2.0) if _port_open(HOST, port) else None
        if answering is not None and answering != ours:
            _kill(pid)
            return None
        if not _is_our_broker(pid):
            if not (port_free(port) and port_free(controller_port)):
                return None  # lost the port to a program that bound it after our check
            raise EngineFailed(
                "the Kafka broker exited during start-up. Last log lines:\n"
                f"{_tail(logs / 'server.log')}\n{_tail(out, 5)}",
                f"read {logs}; `coursekit doctor` checks Java, jars and ports",
            )
        if answering == ours:
            return broker
        time.sleep(0.2)
    _kill(pid)
    raise EngineUnreachable(f"the Kafka broker did not become ready within {timeout:.0f} s",
                            f"see {logs / 'server.log'}; the machine may be short of memory")


_LAUNCHER = """\
import subprocess, sys
with open(sys.argv[1], "ab") as sink:
    child = subprocess.Popen(sys.argv[3:], stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                             start_new_session=True, cwd=sys.argv[2])
print(child.pid)
"""


def _launch_detached(cmd: list[str], log: Path, cwd: Path) -> int:
    """Start ``cmd`` as a daemon (not our child: no zombie when it dies, outlives the kernel); its pid."""
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, str(log), str(cwd), *cmd], capture_output=True,
                          text=True, timeout=60, check=True)
    return int(done.stdout.strip())


def _cluster_of(bootstrap: str, timeout: float) -> str | None:
    """The cluster id of the Kafka answering at ``bootstrap``; ``None`` if none answers (yet)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, "logger": _silent_logger()})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - any client error means "not ready yet"
        return None
    return metadata.cluster_id if metadata.brokers else None


def _ready(bootstrap: str, timeout: float) -> bool:
    return _cluster_of(bootstrap, timeout) is not None


def _silent_logger() -> object:
    import logging

    logger = logging.getLogger("coursekit.kafka.librdkafka")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def _kill(pid: int, grace: float = 15.0) -> None:
    """SIGTERM (Kafka shuts down cleanly), then SIGKILL after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _is_our_broker(pid):
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def stop() -> bool:
    """Stop the embedded broker (its data is kept). Returns ``True`` if one was running."""
    with _start_lock():
        path = _record_path()
        if not path.is_file():
            return False
        try:
            pid = int(json.loads(path.read_text())["pid"])
        except (ValueError, KeyError, TypeError):
            pid = -1
        was_running = pid > 0 and _is_our_broker(pid)
        if was_running:
            _kill(pid)
        path.unlink(missing_ok=True)
        return was_running


def reset() -> None:
    """Stop the embedded broker and delete its topics and data (a fresh, empty cluster next start)."""
    stop()
    shutil.rmtree(_home() / "data", ignore_errors=True)
    (_home() / "cluster.id").unlink(missing_ok=True)


def wait_reachable(bootstrap: str, timeout: float = REACH_TIMEOUT) -> None:
    """Raise :class:`EngineUnreachable` unless a broker at ``bootstrap`` answers within ``timeout`` s."""
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        raise EngineUnreachable(f"{BOOTSTRAP_ENV}={bootstrap!r} is not of the form host:port[,host:port]",
                                "fix the variable, or unset it to use the embedded broker")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(host.strip("[]"), int(port), timeout=1.0) and _ready(bootstrap, 3.0):
            return
        time.sleep(0.5)
    raise EngineUnreachable(
        f"no Kafka broker answered at {bootstrap} within {timeout:.0f} s",
        f"check that the cluster is up and reachable from here, or unset {BOOTSTRAP_ENV} to use the "
        "embedded broker",
    )


def bootstrap_servers(*, start_embedded: bool = True, timeout: float = REACH_TIMEOUT) -> str:
    """Return the bootstrap servers to use: ``$KAFKA_BOOTSTRAP_SERVERS``, or the embedded broker's.

    The embedded broker is started if it is not running (unless ``start_embedded`` is false).
    In a notebook, librdkafka's client logs go to the course log, not into cells
    (:func:`coursekit.config.quiet_native_output`).
    """
    quiet_native_output()
    external = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if external:
        wait_reachable(external, timeout)
        return external
    running = status()
    if running is not None:
        return running.bootstrap
    if not start_embedded:
        raise EngineUnreachable("the embedded Kafka broker is not running", "run `coursekit start kafka`")
    return start().bootstrap


def shared() -> bool:
    """True when notebooks use a cluster others may share (``KAFKA_BOOTSTRAP_SERVERS``), not their own broker."""
    return bool(os.environ.get(BOOTSTRAP_ENV, "").strip())


def name(base: str) -> str:
    """The name a notebook gives a topic, consumer group or transactional id: ``base`` on the learner's own
    broker, ``<learner>.<base>`` on a shared cluster (:mod:`coursekit.naming`). Idempotent."""
    return naming.namespaced(base, shared())


def client_config(**overrides: object) -> dict[str, object]:
    """A confluent-kafka config with ``bootstrap.servers`` filled in, plus ``overrides``.

    Keys use Kafka's dotted names; pass them as a mapping: ``client_config(**{"group.id": "g"})``.
    """
    return {"bootstrap.servers": bootstrap_servers(), **overrides}


def ensure_topic(topic: str, partitions: int = 1, *, config: Mapping[str, str] | None = None,
                 recreate: bool = False, timeout: float = 30.0) -> str:
    """Make sure topic ``topic`` exists with ``partitions`` partitions (AdminClient); return its name.

    The name is :func:`name` of ``topic``: on a shared cluster it gets the learner's prefix, so use the
    returned name. With ``recreate=True`` an existing topic is deleted first, so a notebook starts from
    empty (only this learner's topic: another learner's has another name).
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    name = naming.namespaced(topic, shared())  # what name(topic) gives
    bootstrap = bootstrap_servers()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=timeout).topics
    if name in existing and recreate:
        admin.delete_topics([name], operation_timeout=timeout)[name].result(timeout)
        deadline = time.monotonic() + timeout
        while name in admin.list_topics(timeout=timeout).topics and time.monotonic() < deadline:
            time.sleep(0.2)
        existing = {}
    if name in existing:
        have = len(existing[name].partitions)
        if have != partitions:
            raise ValueError(f"topic {name!r} exists with {have} partitions, not {partitions}; "
                             "pass recreate=True to start it afresh")
        return name
    topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=dict(config or {}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.create_topics([topic], operation_timeout=timeout)[name].result(timeout)
            break
        except KafkaException as exc:
            # right after a delete the broker may still report the topic as being deleted
            if "TOPIC_ALREADY_EXISTS" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    while name not in admin.list_topics(timeout=timeout).topics:
        time.sleep(0.1)
    return name


@dataclass(frozen=True)
class Record:
    """One consumed Kafka record, decoded: key and value as text, value parsed as JSON if it is."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: object
    headers: tuple[tuple[str, bytes], ...] = ()


def read_all(topic: str, *, isolation: str = "read_committed", timeout: float = 15.0,
             raw: bool = False) -> list[Record]:
    """Read every record currently in ``topic`` (all partitions, from the beginning), then stop.

    Uses a throw-away consumer that commits nothing, so it changes no consumer group's offsets.
    ``isolation`` defaults to ``read_committed``, librdkafka's own default (the Java client's is
    ``read_uncommitted``): records of aborted or still-open transactions are hidden, and reading stops at
    the last stable offset. ``isolation="read_uncommitted"`` shows every record in the log. Values are
    parsed as JSON where they are JSON (else text); ``raw=True`` keeps them as bytes.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers(),
        "group.id": name(f"coursekit-read-all-{uuid.uuid4().hex}"),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "isolation.level": isolation,
        "fetch.wait.max.ms": 10,   # at a partition's end the broker answers at once, not after 500 ms
    })
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        # assigned, not subscribed: no group to join (that took ~0.65 s a call), nothing to rebalance
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = set(partitions)
        records: list[Record] = []
        if not pending:
            return records
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                    continue
                raise RuntimeError(f"reading {topic}: {msg.error()}")
            value = msg.value() if raw else _decode(msg.value())
            headers = tuple((k, v or b"") for k, v in (msg.headers() or []))
            records.append(Record(msg.topic(), msg.partition(), msg.offset(), _text(msg.key()), value, headers))
        if pending:
            raise EngineUnreachable(f"could not read all of {topic} within {timeout:.0f} s "
                                    f"(partitions {sorted(pending)} never reached their end)",
                                    "check `coursekit status`; a slow machine may need a longer timeout")
        return records
    finally:
        consumer.close()


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode(errors="replace")


def _decode(raw: bytes | None) -> object:
    if raw is None:
        return None
    text = raw.decode(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def fresh_topic(prefix: str, partitions: int = 1, *, config: Mapping[str, str] | None = None) -> str:
    """Create a new, empty topic ``<prefix>.<random suffix>`` and return its name.

    For code that must not see anyone else's records: tests, and many submissions graded at once.
    """
    return ensure_topic(f"{prefix}.{uuid.uuid4().hex[:10]}", partitions, config=config)


def delete_topics(names: list[str], timeout: float = 30.0) -> None:
    """Delete topics (missing ones are ignored)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers()})
    existing = set(admin.list_topics(timeout=timeout).topics)
    doomed = [n for n in names if n in existing]
    for future in admin.delete_topics(doomed, operation_timeout=timeout).values() if doomed else []:
        future.result(timeout)
