"""The MQTT broker of lesson 17: delivery, retained messages, last will, the byte-counting link, and the errors."""

from __future__ import annotations

import queue
import socket
import time
from collections.abc import Iterator

import pytest

from coursekit import mqtt
from coursekit.errors import EngineUnreachable, PortInUse


@pytest.fixture(scope="module")
def broker() -> Iterator[mqtt.Broker]:
    started = mqtt.start()
    yield started
    mqtt.stop()


@pytest.fixture
def clients() -> Iterator[list]:
    made: list = []
    yield made
    for c in made:
        c.disconnect()
        c.loop_stop()


def _inbox(clients: list, name: str, filters: list[tuple[str, int]], **kwargs: object) -> queue.Queue:
    box: queue.Queue = queue.Queue()
    clients.append(mqtt.client(name, subscribe=filters, on_message=lambda c, u, m: box.put(m), **kwargs))
    return box


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_start_is_idempotent_and_loopback_only(broker: mqtt.Broker) -> None:
    assert mqtt.start() is broker and broker.running() and not broker.external
    assert broker.host == "127.0.0.1" and broker.url == f"mqtt://127.0.0.1:{broker.port}"
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
        mqtt.broker_config("0.0.0.0", 1883)
    plugins = mqtt.broker_config("127.0.0.1", 0)["plugins"]
    assert not any("sys" in name for name in plugins), "no $SYS topics"


def test_qos1_publish_is_acknowledged_and_delivered(broker: mqtt.Broker, clients: list) -> None:
    box = _inbox(clients, "t-sub", [("t/qos1/#", 1)])
    pub = mqtt.client("t-pub")
    clients.append(pub)
    info = pub.publish("t/qos1/a", b"21.5", qos=1)
    info.wait_for_publish(5)
    assert info.is_published()
    msg = box.get(timeout=5)
    assert (msg.topic, msg.payload, msg.qos) == ("t/qos1/a", b"21.5", 1)


def test_retained_message_reaches_a_late_subscriber_once(broker: mqtt.Broker, clients: list) -> None:
    _inbox(clients, "t-early", [("t/ret/#", 1)])  # another client's filter that matches (amqtt's stray resend)
    pub = mqtt.client("t-ret-pub")
    clients.append(pub)
    pub.publish("t/ret/status", b"online", qos=1, retain=True).wait_for_publish(5)
    late = _inbox(clients, "t-late", [("t/ret/status", 1)])
    msg = late.get(timeout=5)
    assert (msg.payload, msg.retain) == (b"online", True)
    time.sleep(0.3)
    assert late.empty(), "the retained message was delivered twice"
    pub.publish("t/ret/status", b"", qos=1, retain=True).wait_for_publish(5)  # an empty payload clears it


def test_last_will_on_an_abrupt_disconnect(broker: mqtt.Broker, clients: list) -> None:
    box = _inbox(clients, "t-watch", [("t/will/+", 1)])
    gateway = mqtt.client("t-gw", will=mqtt.Will("t/will/gw", b"offline", qos=1, retain=False))
    mqtt.cut(gateway)
    msg = box.get(timeout=5)
    assert (msg.topic, msg.payload) == ("t/will/gw", b"offline")
    polite = mqtt.client("t-gw2", will=mqtt.Will("t/will/gw2", b"offline", qos=1, retain=False))
    polite.disconnect()
    polite.loop_stop()
    with pytest.raises(queue.Empty):
        box.get(timeout=0.5)  # a clean DISCONNECT discards the will


def test_link_counts_the_exact_packet_bytes_and_can_be_cut(broker: mqtt.Broker, clients: list) -> None:
    box = _inbox(clients, "t-link-watch", [("t/link/#", 1)])
    link = mqtt.Link(broker)
    try:
        gw = mqtt.client("t-link-gw", via=link, will=mqtt.Will("t/link/status", b"offline", 1, False))
        clients.append(gw)
        link.reset()
        payload = b'{"t":4.2}'
        for _ in range(5):
            gw.publish("t/link/r", payload, qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 2
        while link.down < 5 * 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert link.up == 5 * mqtt.publish_size("t/link/r", payload, qos=1)
        assert link.down == 5 * 4, "a PUBACK is 4 bytes"
        for _ in range(5):
            box.get(timeout=5)
        link.cut()
        assert box.get(timeout=5).payload == b"offline"
        assert not link.online
        link.restore()
        deadline = time.monotonic() + 10
        while not gw.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gw.is_connected(), "the client reconnects once the link is back"
    finally:
        link.close()


def test_publish_size() -> None:
    assert mqtt.publish_size("a/b", b"", qos=0) == 1 + 1 + 2 + 3
    assert mqtt.publish_size("a/b", b"x" * 200, qos=1) == 1 + 2 + 2 + 3 + 2 + 200  # remaining length > 127


def test_unreachable_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mqtt.URL_ENV, f"mqtt://127.0.0.1:{_free_port()}")
    with pytest.raises(EngineUnreachable, match="no MQTT broker accepted") as caught:
        mqtt.start(timeout=2)
    assert mqtt.URL_ENV in caught.value.fix
    ok, found, fix = mqtt.check()
    assert not ok and "no MQTT broker" in found and fix


def test_bad_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mqtt.URL_ENV, "http://broker:1883")
    with pytest.raises(ValueError, match="not a URL like mqtt://"):
        mqtt.broker_url()
    assert not mqtt.check()[0]
    monkeypatch.setenv(mqtt.URL_ENV, "mqtts://ada:s%40cret@iot.example:8883")
    named = mqtt.broker_url()
    assert named is not None and named.tls and named.port == 8883 and named.password == "s@cret"


def test_busy_port(broker: mqtt.Broker) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(ValueError, match="already runs"):
            mqtt.start(port=sock.getsockname()[1])
        mqtt.stop()
        try:
            with pytest.raises(PortInUse, match="in use by another program"):
                mqtt.start(port=sock.getsockname()[1])
        finally:
            mqtt.start()


def test_stop_and_start_again_on_the_same_port() -> None:
    first = mqtt.start()
    port = first.port
    assert mqtt.stop(abrupt=True)
    assert not first.running() and not mqtt.stop()
    again = mqtt.start(port=port)
    assert again.port == port and again is not first


def test_names_on_a_shared_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    assert mqtt.topic("l17/W1/#") == "l17/W1/#"
    monkeypatch.setenv(mqtt.URL_ENV, "mqtt://broker.example:1883")
    monkeypatch.setenv("COURSEKIT_LEARNER", "ada")
    assert mqtt.topic("l17/W1/#") == "ada/l17/W1/#" == mqtt.topic("ada/l17/W1/#")
    assert mqtt.client_id("l17-gw") == "ada.l17-gw"


def test_fridge_readings_are_seeded_and_utc() -> None:
    a, b = mqtt.fridge_readings(minutes=30), mqtt.fridge_readings(minutes=30)
    assert a.equals(b) and str(a["ts"].dt.tz) == "UTC"
    assert a.groupby("fridge_id")["seq"].apply(lambda s: s.is_monotonic_increasing and s.iloc[0] == 1).all()
    warm = a[a["temp_c"] > 8.0]
    assert set(warm["fridge_id"]) >= {"W1-F2"}, "the planted excursion is above 8 °C"
