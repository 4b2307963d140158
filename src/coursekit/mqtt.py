"""MQTT for the course: an embedded broker for this kernel, or your own, and paho-mqtt clients for it.

::

    from coursekit import mqtt
    broker = mqtt.start()                                  # amqtt's broker on a free 127.0.0.1 port
    sub = mqtt.client("l17-dashboard", subscribe=[(mqtt.topic("l17/#"), 1)], on_message=handle)
    pub = mqtt.client("l17-gw-W1", will=mqtt.Will(mqtt.topic("l17/W1/status"), b"offline", 1, True))
    pub.publish(mqtt.topic("l17/W1/status"), b"online", qos=1, retain=True).wait_for_publish(5)
    link = mqtt.Link(broker)                               # a byte-counting relay that can be cut
    gw = mqtt.client("l17-gw-W2", via=link)                # connects through it
    mqtt.publish_size(topic, payload, qos=1)               # the MQTT 3.1.1 PUBLISH packet, in bytes
    mqtt.stop()

======================================================  ===================================================
embedded default (this module starts it)                switch to your own
======================================================  ===================================================
amqtt 0.12.1's broker (MQTT 3.1.1), in a process of     ``COURSEKIT_MQTT_URL=mqtt://host:1883`` (Mosquitto,
its own that dies with the kernel; one TCP listener on  EMQX, HiveMQ…), ``mqtts://user:pass@host:8883`` for
``127.0.0.1``, anonymous access, no ``$SYS`` topics,    TLS with the system's CAs. AWS IoT Core needs TLS
messages and sessions in memory only                    with a client certificate: pass ``tls=`` to
                                                        :func:`client` (paho's ``tls_set`` arguments)
======================================================  ===================================================

:func:`start` is idempotent per kernel: the first call starts the broker (about 1 s, most of it importing
amqtt), later calls return it while it runs. With ``COURSEKIT_MQTT_URL`` set it only checks that the broker
answers an MQTT CONNECT and starts nothing. On a broker shared by a class, :func:`topic` puts the learner's
name in front of topics (``ada/l17/...``) and :func:`client` in front of client ids (a broker disconnects
the older of two connections with one client id), as :mod:`coursekit.naming` does for Kafka and MLflow.

The embedded broker keeps retained messages in memory: :func:`stop` loses them, unlike Mosquitto with
``persistence true``. Where amqtt 0.12.1 departs from MQTT 3.1.1: it discards a QoS 1 message in flight to a
subscriber whose connection ends, or that sends no PUBACK within 5 s, where section 4.4 has the broker resend
it when a persistent session reconnects; it keeps no persistent session (``clean_session=False``) for an
anonymous client, and the embedded broker admits every client anonymously, so nothing is queued for a
disconnected client and its session is deleted about a second later; it does not close a connection that
stays silent past the keep-alive (section 3.1.2.10), so a will waits for TCP to fail; and it sends a
connecting client the retained messages matching any client's subscriptions (:func:`client` drops those).
It speaks MQTT 3.1.1 only; MQTT 5 (Mosquitto, EMQX) adds reason
codes on every acknowledgement, message and session expiry, topic aliases, user properties, shared
subscriptions and a will delay interval.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, urlsplit

from coursekit import naming
from coursekit.config import engine_dir
from coursekit.errors import EngineFailed, EngineUnreachable, PortInUse
from coursekit.processes import log_tail as _tail
from coursekit.processes import tied_to_this_process

if TYPE_CHECKING:
    import pandas as pd
    from paho.mqtt.client import Client, MQTTMessage

URL_ENV = "COURSEKIT_MQTT_URL"
HOST = "127.0.0.1"
START_TIMEOUT = 15.0
CONNECT_TIMEOUT = 10.0
STOP_GRACE = 5.0


# what the broker's own process runs (through coursekit.processes.tied_to_this_process)
_SERVE = "import sys; from coursekit.mqtt import _serve; _serve(sys.argv[1], int(sys.argv[2]), sys.argv[3])"


@dataclass
class Broker:
    """An MQTT broker: the embedded one (``process`` is set) or the one ``COURSEKIT_MQTT_URL`` names."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log: Path | None = None
    ready_after: float | None = None  #: seconds from :func:`start` until the broker accepted connections

    @property
    def url(self) -> str:
        """``mqtt://host:port`` (``mqtts://`` with TLS), without credentials."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def external(self) -> bool:
        """True for a broker named by ``COURSEKIT_MQTT_URL``: not ours to start or stop."""
        return self.process is None

    def running(self) -> bool:
        """True while our broker's process is alive (always True for an external broker)."""
        return self.process is None or self.process.poll() is None


class Will(NamedTuple):
    """A last will: what the broker publishes for a client whose connection ends without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


_ours: Broker | None = None
_lock = threading.Lock()


# --- configuration ---------------------------------------------------------------------------------------

def broker_url() -> Broker | None:
    """The broker ``$COURSEKIT_MQTT_URL`` names (not yet checked), or ``None`` to use the embedded one.

    Raises ``ValueError`` when the variable is set but is not ``mqtt[s]://[user[:password]@]host[:port]``.
    """
    raw = os.environ.get(URL_ENV, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or port == -1 or parts.path not in ("", "/"):
        raise ValueError(f"{URL_ENV}={raw!r} is not a URL like mqtt://host:1883 or mqtts://user:pass@host:8883; "
                         "fix it, or unset it to start a broker in this notebook")
    tls = parts.scheme == "mqtts"
    return Broker(host=parts.hostname, port=port or (8883 if tls else 1883), tls=tls,
                  username=unquote(parts.username) if parts.username else None,
                  password=unquote(parts.password) if parts.password else None)


def shared() -> bool:
    """True when notebooks use a broker others may share (``COURSEKIT_MQTT_URL``), not their own."""
    return bool(os.environ.get(URL_ENV, "").strip())


def topic(base: str) -> str:
    """The topic (or topic filter) a notebook uses for ``base``: ``base`` on the learner's own broker,
    ``<learner>/<base>`` on a shared one (:mod:`coursekit.naming`). Idempotent."""
    head = naming.prefix(shared()).rstrip(".")
    return base if not head or base.startswith(f"{head}/") else f"{head}/{base}"


def client_id(base: str) -> str:
    """The client id a notebook uses for ``base``: with the learner's prefix on a shared broker. Idempotent."""
    return naming.namespaced(base, shared())


# --- the embedded broker ---------------------------------------------------------------------------------

def broker_config(host: str, port: int) -> dict[str, Any]:
    """amqtt's configuration for the embedded broker: one TCP listener on ``host:port``, anonymous access (the
    listener is loopback only), and no ``$SYS`` topics, event or packet logging plugins."""
    if host != HOST:
        raise ValueError(f"the embedded broker allows anonymous clients, so it listens on {HOST} only")
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


def _serve(host: str, port: int, ready: str) -> None:  # pragma: no cover - runs in the broker's process
    """The broker process: serve until SIGTERM, after writing ``{"port": ...}`` to the file ``ready``."""
    import asyncio
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        from amqtt.broker import Broker as AmqttBroker

        broker = AmqttBroker(broker_config(host, port))
        await broker.start()
        bound = broker._servers["default"].instance.sockets[0].getsockname()[1]  # port 0: the one the OS picked
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        partial = Path(f"{ready}.partial")
        partial.write_text(json.dumps({"port": bound, "pid": os.getpid()}))
        partial.replace(ready)
        await stopping.wait()
        await broker.shutdown()

    asyncio.run(main())


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's start_server binds
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def start(*, port: int | None = None, timeout: float = START_TIMEOUT) -> Broker:
    """This kernel's broker: started on first use (on ``port``, default a free one), returned while it runs.

    With ``$COURSEKIT_MQTT_URL`` set, that broker is returned once it answers an MQTT CONNECT, and nothing
    starts. Raises :class:`~coursekit.errors.PortInUse` for a busy ``port``,
    :class:`~coursekit.errors.EngineFailed` when the broker exits during start-up and
    :class:`~coursekit.errors.EngineUnreachable` when a broker does not answer within ``timeout`` s.
    On Linux the broker gets SIGTERM when the thread that started it ends (in a notebook: the kernel).
    """
    global _ours
    external = broker_url()
    if external is not None:
        _probe(external, timeout=min(timeout, CONNECT_TIMEOUT))
        return external
    with _lock:
        if _ours is not None and _ours.running() and (port is None or port == _ours.port):
            return _ours
        if _ours is not None and _ours.running():
            raise ValueError(f"this kernel's broker already runs on port {_ours.port}; stop() it first")
        if port is not None and not _port_free(port):
            raise PortInUse(f"port {port} on {HOST} is in use by another program, so the MQTT broker cannot "
                            "listen there",
                            f"pass another port (or none: a free one is picked), or stop that program (find it "
                            f"with `ss -ltnp 'sport = :{port}'`)")
        home = engine_dir("mqtt")
        began = time.monotonic()
        ready = home / f"ready-{os.getpid()}.json"
        ready.unlink(missing_ok=True)
        log = home / f"broker-{os.getpid()}.log"
        with log.open("wb") as sink:
            serve = [sys.executable, "-c", _SERVE, HOST, str(port or 0), str(ready)]
            process = subprocess.Popen(tied_to_this_process(serve, "the MQTT broker"), stdin=subprocess.DEVNULL,
                                       stdout=sink, stderr=subprocess.STDOUT, cwd=home, start_new_session=True,
                                       env=_child_env())
        deadline = time.monotonic() + timeout
        while not ready.is_file():
            if process.poll() is not None:
                end = _tail(log)
                if "address already in use" in end.lower() or "errno 98" in end.lower():
                    raise PortInUse(f"another program took port {port} on {HOST} while the MQTT broker started",
                                    "start it again on another port, or with none: a free one is picked")
                raise EngineFailed(f"the MQTT broker (amqtt) exited with code {process.returncode} during start-up. "
                                   f"Last lines of its log:\n{end}",
                                   f"read {log}; `coursekit doctor` checks that amqtt is installed")
            if time.monotonic() > deadline:
                _terminate(process)
                raise EngineUnreachable(f"the MQTT broker did not start within {timeout:.0f} s. Last lines of its "
                                        f"log:\n{_tail(log)}",
                                        "the machine may be short of CPU or memory: close other notebooks "
                                        "(`coursekit status`), then start it again")
            time.sleep(0.02)
        bound = int(json.loads(ready.read_text())["port"])
        ready.unlink(missing_ok=True)
        _ours = Broker(host=HOST, port=bound, process=process, log=log, ready_after=time.monotonic() - began)
        return _ours


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parent.parent)  # the broker imports coursekit.mqtt from this checkout
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


def _terminate(process: subprocess.Popen[bytes], *, abrupt: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGKILL if abrupt else signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_GRACE)


def stop(*, abrupt: bool = False) -> bool:
    """Stop this kernel's broker (its retained messages and sessions are lost); ``True`` if it was running.

    ``abrupt=True`` kills it (SIGKILL), as a crash or a power cut would: clients see their connection reset.
    A broker named by ``COURSEKIT_MQTT_URL`` is left alone.
    """
    global _ours
    with _lock:
        broker, _ours = _ours, None
    if broker is None or broker.process is None or broker.process.poll() is not None:
        return False
    _terminate(broker.process, abrupt=abrupt)
    return True


atexit.register(stop)


# --- clients ---------------------------------------------------------------------------------------------

def client(name: str, *, broker: Broker | None = None, via: Link | None = None, clean_session: bool = True,
           will: Will | None = None, subscribe: Iterable[tuple[str, int]] = (),
           on_message: Callable[[Client, Any, MQTTMessage], None] | None = None,
           on_connect: Callable[[Client], None] | None = None, keepalive: int = 60, manual_ack: bool = False,
           tls: Mapping[str, Any] | None = None, reconnect_delay: tuple[int, int] = (1, 2),
           timeout: float = CONNECT_TIMEOUT) -> Client:
    """A paho-mqtt 2.x client (callback API version 2, MQTT 3.1.1), connected, its network thread running.

    ``name`` becomes the client id (:func:`client_id`: with the learner's prefix on a shared broker).
    ``subscribe`` is renewed on every (re)connect, then ``on_connect(client)`` runs (publish a "birth"
    message there). ``via`` connects through a :class:`Link`. ``manual_ack=True`` leaves the PUBACK of each
    received QoS 1 message to you (``client.ack(msg.mid, msg.qos)``). ``tls`` (paho's ``tls_set`` arguments:
    ``ca_certs``, ``certfile``, ``keyfile``) overrides the system CAs an ``mqtts://`` broker is checked with.
    After a lost connection the thread reconnects, waiting ``reconnect_delay`` (min, max) seconds between
    tries. Raises :class:`~coursekit.errors.EngineUnreachable` when no broker accepts the connection.
    """
    import paho.mqtt.client as paho

    broker = broker or start()
    host, port = (HOST, via.port) if via is not None else (broker.host, broker.port)
    mqttc = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id(name), clean_session=clean_session,
                        protocol=paho.MQTTv311, manual_ack=manual_ack)
    if broker.tls or tls:
        mqttc.tls_set(**dict(tls or {}))
    if broker.username:
        mqttc.username_pw_set(broker.username, broker.password)
    if will is not None:
        mqttc.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    mqttc.reconnect_delay_set(*reconnect_delay)
    subscriptions = list(subscribe)
    connected, subscribed = threading.Event(), threading.Event()
    refused: list[str] = []
    pending: list[int] = []

    def connect_callback(c: Client, _userdata: Any, _flags: Any, reason: Any, _properties: Any) -> None:
        if reason.is_failure:
            refused.append(str(reason))
            return
        if subscriptions:
            subscribed.clear()
            pending[:] = [c.subscribe(subscriptions)[1]]
        if on_connect is not None:
            on_connect(c)
        connected.set()

    def subscribe_callback(_c: Client, _userdata: Any, mid: int, _reasons: Any, _properties: Any) -> None:
        if mid in pending:
            subscribed.set()

    def message_callback(c: Client, userdata: Any, msg: MQTTMessage) -> None:
        # amqtt 0.12.1 also sends a connecting client the retained messages that match *other* clients'
        # subscriptions, before its own SUBACK: drop what this client did not subscribe to
        stray = not any(paho.topic_matches_sub(f, msg.topic) for f, _ in subscriptions) or (
            clean_session and not subscribed.is_set())
        if stray and not broker.external:
            if manual_ack and msg.qos > 0:
                c.ack(msg.mid, msg.qos)
            return
        if on_message is not None:
            on_message(c, userdata, msg)
        elif manual_ack and msg.qos > 0:
            c.ack(msg.mid, msg.qos)

    mqttc.on_connect = connect_callback
    mqttc.on_subscribe = subscribe_callback
    mqttc.on_message = message_callback
    try:
        mqttc.connect(host, port, keepalive=keepalive)
    except OSError as exc:
        raise EngineUnreachable(f"no MQTT broker accepted a connection at {host}:{port} ({exc})", _fix(broker)) from exc
    mqttc.loop_start()
    if not connected.wait(timeout) or refused:
        mqttc.loop_stop()
        mqttc.disconnect()
        why = f"refused it: {refused[0]}" if refused else f"did not answer CONNECT within {timeout:.0f} s"
        raise EngineUnreachable(f"the MQTT broker at {host}:{port} {why}", _fix(broker))
    if subscriptions and not subscribed.wait(timeout):
        cut(mqttc)
        raise EngineUnreachable(f"the MQTT broker at {host}:{port} did not acknowledge the subscriptions within "
                                f"{timeout:.0f} s", _fix(broker))
    return mqttc


def _fix(broker: Broker) -> str:
    if broker.external:
        return (f"check that the broker in {URL_ENV} is up and reachable from here (and its credentials), or unset "
                f"{URL_ENV} to start one in this notebook")
    return "the notebook's broker is not running: call mqtt.start() (`coursekit doctor` checks the set-up)"


def cut(mqttc: Client) -> None:
    """End a client's connection without a DISCONNECT packet, as a power cut does (its will is published).

    The network thread is stopped first, so the client does not reconnect: build a new client to come back.
    """
    mqttc.loop_stop()
    sock = mqttc.socket()
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def _probe(broker: Broker, timeout: float) -> None:
    """Raise :class:`EngineUnreachable` unless ``broker`` accepts an MQTT connection within ``timeout`` s."""
    mqttc = client(f"coursekit-probe-{os.getpid()}", broker=broker, timeout=timeout)
    mqttc.disconnect()
    mqttc.loop_stop()


def publish_size(topic_name: str, payload: bytes, qos: int) -> int:
    """Bytes of an MQTT 3.1.1 PUBLISH packet: fixed header (1 byte + the remaining length, 1 to 4 bytes), topic
    (2-byte length + UTF-8), packet identifier (2 bytes, QoS 1 and 2 only) and payload. TCP/IP and TLS
    headers are not included."""
    remaining = 2 + len(topic_name.encode()) + (2 if qos > 0 else 0) + len(payload)
    length_bytes = 1
    while remaining >= 128 ** length_bytes:
        length_bytes += 1
    return 1 + length_bytes + remaining


# --- a link that counts bytes and can be cut -------------------------------------------------------------

class Link:
    """A TCP relay on ``127.0.0.1`` between clients and a broker: what a device's cellular link carries.

    It counts the bytes it relays each way (``up``: clients to broker, ``down``: broker to clients): the MQTT
    packets exactly, without TCP/IP or (for ``mqtts``) TLS framing. :meth:`cut` drops every connection
    through it and refuses new ones until :meth:`restore`, as a lost signal does; the broker sees each
    connection end without a DISCONNECT and publishes the client's will.
    """

    def __init__(self, broker: Broker | None = None) -> None:
        broker = broker or start()
        self.target = (broker.host, broker.port)
        self.up = 0
        self.down = 0
        self._online = True
        self._closed = False
        self._lock = threading.Lock()
        self._peers: dict[socket.socket, tuple[socket.socket, str]] = {}
        self._selector = selectors.DefaultSelector()
        self._listener = socket.create_server((HOST, 0))
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, name=f"coursekit-mqtt-link-{self.port}", daemon=True)
        self._thread.start()

    @property
    def online(self) -> bool:
        """False between :meth:`cut` and :meth:`restore`."""
        return self._online

    def reset(self) -> None:
        """Set both byte counters to zero."""
        with self._lock:
            self.up = self.down = 0

    def cut(self) -> None:
        """Drop every connection through the link and refuse new ones."""
        with self._lock:
            self._online = False
            for sock in list(self._peers):
                self._drop(sock)

    def restore(self) -> None:
        """Accept connections again (clients reconnect on their own schedule)."""
        self._online = True

    def close(self) -> None:
        """Drop every connection and stop relaying."""
        self.cut()
        self._closed = True
        self._thread.join(timeout=2)
        self._selector.close()
        self._listener.close()

    def _drop(self, sock: socket.socket) -> None:  # with self._lock held
        entry = self._peers.pop(sock, None)
        for s in (sock, entry[0] if entry else None):
            if s is None:
                continue
            self._peers.pop(s, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(s)
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        try:
            downstream, _ = self._listener.accept()
        except BlockingIOError:
            return
        if not self._online:
            downstream.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            downstream.close()
            return
        downstream.setblocking(True)
        upstream.settimeout(None)
        for s in (downstream, upstream):  # relay each packet at once, as the client and broker send them
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._peers[downstream] = (upstream, "up")
        self._peers[upstream] = (downstream, "down")
        self._selector.register(downstream, selectors.EVENT_READ)
        self._selector.register(upstream, selectors.EVENT_READ)

    def _run(self) -> None:
        while not self._closed:
            try:
                events = self._selector.select(timeout=0.2)
            except (OSError, ValueError):  # closed while waiting
                return
            with self._lock:
                for key, _ in events:
                    sock = key.fileobj
                    if sock is self._listener:
                        self._accept()
                        continue
                    if sock not in self._peers:
                        continue  # dropped meanwhile
                    peer, direction = self._peers[sock]  # type: ignore[index]
                    try:
                        chunk = sock.recv(65536)  # type: ignore[union-attr]
                        if chunk:
                            peer.sendall(chunk)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        self._drop(sock)  # type: ignore[arg-type]
                        continue
                    if direction == "up":
                        self.up += len(chunk)
                    else:
                        self.down += len(chunk)


# --- Brightcart's fridges --------------------------------------------------------------------------------

def fridge_readings(minutes: int = 60, seed: int = 17, *, fridges: tuple[str, ...] = ("W1-F1", "W1-F2", "W2-F1",
                    "W3-F1"), every_s: int = 5, start: Any = None, drifting: str = "W2-F1",
                    excursion: tuple[str, int, int] = ("W1-F2", 1300, 20)) -> pd.DataFrame:
    """Seeded cold-chain readings of Brightcart's warehouse fridges, one row per fridge every ``every_s`` s.

    Columns: ``fridge_id``, ``warehouse_id``, ``seq`` (the device's counter, from 1), ``ts`` (UTC),
    ``temp_c`` (one decimal, as the sensor reports it), ``door_open`` (bool) and ``battery_v``. Fridges hold
    about 3.5 °C with noise; opening the door warms them for a few readings; ``drifting`` warms slowly (a
    failing compressor: about +6 °C an hour); ``excursion`` = (fridge, second, length in seconds) plants one
    short warm excursion (a pallet left against the door), above 8 °C. Default start: ``coursekit.data.EPOCH``.
    """
    import numpy as np
    import pandas as pd

    from coursekit.data import EPOCH

    rng = np.random.default_rng(seed)
    n = minutes * 60 // every_s
    offsets = np.arange(n) * every_s
    frames = []
    for fridge in fridges:
        temp = 3.5 + rng.normal(0, 0.25, n) + 0.3 * np.sin(offsets / 900.0 + rng.uniform(0, 6))
        door = rng.random(n) < 0.01
        for i in np.flatnonzero(door):
            temp[i:i + 6] += np.linspace(2.0, 0.3, len(temp[i:i + 6]))
        if fridge == drifting:
            temp += offsets / 3600.0 * 6.0
        if fridge == excursion[0]:
            inside = (offsets >= excursion[1]) & (offsets < excursion[1] + excursion[2])
            temp[inside] += 6.5
        battery = 3.6 - offsets / 3600.0 * 0.02 + rng.normal(0, 0.005, n)
        frames.append(pd.DataFrame({
            "fridge_id": fridge, "warehouse_id": fridge.split("-")[0], "seq": np.arange(1, n + 1),
            "ts": pd.Timestamp(start or EPOCH) + pd.to_timedelta(offsets, unit="s"),
            "temp_c": np.round(temp, 1), "door_open": door, "battery_v": np.round(battery, 3),
        }))
    return pd.concat(frames, ignore_index=True).sort_values(["ts", "fridge_id"], ignore_index=True)


# --- coursekit doctor ------------------------------------------------------------------------------------

def check() -> tuple[bool, str, str]:
    """For ``coursekit doctor``: ``(ok, what it found, the fix)`` about MQTT."""
    try:
        external = broker_url()
    except ValueError as exc:
        return False, str(exc), f"set {URL_ENV} to mqtt://host:port, or unset it"
    import importlib.metadata as metadata

    try:
        paho_version = metadata.version("paho-mqtt")
    except metadata.PackageNotFoundError:
        return False, "paho-mqtt is not installed", "run `./course setup` to reinstall the locked packages"
    if not paho_version.startswith("2."):
        return False, f"paho-mqtt {paho_version} is installed; the course needs 2.x", "run `./course setup`"
    if external is not None:
        try:
            _probe(external, timeout=5.0)
        except EngineUnreachable as exc:
            return False, exc.problem, exc.fix
        return True, f"the MQTT broker at {external.url} accepts connections (paho-mqtt {paho_version})", ""
    try:
        amqtt_version = metadata.version("amqtt")
    except metadata.PackageNotFoundError:
        return (False, "amqtt (the embedded MQTT broker) is not installed",
                "run `./course setup` to reinstall the locked packages")
    return (True, f"amqtt {amqtt_version} can start a broker on {HOST} (paho-mqtt {paho_version}); logs in "
                  f"{engine_dir('mqtt')}", "")
