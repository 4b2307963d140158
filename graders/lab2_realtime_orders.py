"""Hidden tests of Lab 2, judged by the grader outside the student's kernel (see coursekit.hidden).

Each function prepares one test cell's hidden inputs here (topics filled from seeds the kernel never
sees), names the call the kernel makes, and checks the reported value and what the call left in Kafka
or SQLite with the grader's own clients, against a truth computed here, independently of the
reference solution. Not released to students; hidden from the grader kernel.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import uuid
from collections import defaultdict
from typing import Any

import pandas as pd
from confluent_kafka import Consumer, Producer, TopicPartition

from coursekit import data, hidden, kafka
from coursekit.hidden import Hidden

SETUP = "from confluent_kafka import Producer as _Producer\nfrom coursekit import data as _data, kafka as _kafka"


def _produce(topic: str, pairs: list[tuple[str, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers(), "enable.idempotence": True})
    for key, value in pairs:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0, f"could not fill {topic}"


def _committed(topic: str, group: str, partitions: int) -> int:
    probe = Consumer({"bootstrap.servers": kafka.bootstrap_servers(), "group.id": group})
    try:
        offsets = probe.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        probe.close()
    return sum(max(tp.offset, 0) for tp in offsets)


def _is_pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2


def part_a_tests(rng: random.Random) -> Hidden:
    """publish_orders: every event, keyed by order, each order in one partition and in list order."""
    seed, partitions = rng.randrange(2**31), rng.choice([3, 4, 5])
    events = data.order_events(n_orders=150, seed=seed, late_fraction=0.2)
    topic = kafka.fresh_topic("lab2.a.hidden", partitions)

    def verify(returned: Any) -> None:
        records = kafka.read_all(topic)
        assert returned == len(events), f"publish_orders returned {returned!r}, expected {len(events)}"
        assert len(records) == len(events), f"{len(records)} records in the topic, expected {len(events)}"
        values = [r.value for r in records]
        assert all(isinstance(v, dict) for v in values), "every value is an event as JSON"
        assert sorted(v.get("event_id", "") for v in values) == sorted(e["event_id"] for e in events), \
            "the topic holds other events than the ones given"
        assert all(r.key == r.value["order_id"] for r in records), "key each record by its order_id"
        position = {e["event_id"]: i for i, e in enumerate(events)}
        seen: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for r in sorted(records, key=lambda r: (r.partition, r.offset)):
            seen[r.value["order_id"]].append((r.partition, position[r.value["event_id"]]))
        for order_id, places in seen.items():
            assert len({p for p, _ in places}) == 1, f"order {order_id} is split across partitions"
            assert [i for _, i in places] == sorted(i for _, i in places), f"order {order_id} is out of order"

    return Hidden(setup=SETUP, verify=verify, cleanup=lambda: kafka.delete_topics([topic]),
                  call=f"publish_orders(_Producer({{'bootstrap.servers': _kafka.bootstrap_servers()}}), {topic!r}, "
                       f"_data.order_events(n_orders=150, seed={seed}, late_fraction=0.2))")


def _windowed_truth(events: list[dict[str, Any]], window_s: int, lateness_s: int
                    ) -> tuple[dict[tuple[str, str], float], list[str]]:
    """Part B's truth with pandas: the watermark is the running maximum of event time, shifted by one."""
    frame = pd.DataFrame(events)
    t = pd.to_datetime(frame["event_time"], utc=True)
    start = t.dt.floor(f"{window_s}s")
    watermark = t.cummax().shift(1) - pd.Timedelta(seconds=lateness_s)
    is_late = (watermark >= start + pd.Timedelta(seconds=window_s)).fillna(False).astype(bool)
    paid = frame[~is_late & (frame["type"] == "order_paid")].assign(window=start.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    totals = paid.groupby(["window", "region"])["amount"].sum().round(2)
    return {(w, r): float(v) for (w, r), v in totals.items()}, frame.loc[is_late, "event_id"].tolist()


def part_b_tests(rng: random.Random) -> Hidden:
    """windowed_revenue on two hidden topics, with two window/lateness settings."""
    runs = []
    for window_s, lateness_s in ((rng.choice([60, 120]), rng.choice([10, 20])), (300, rng.choice([60, 90]))):
        for _ in range(20):   # the hidden data must have late events
            events = data.order_events(n_orders=180, seed=rng.randrange(2**31), minutes=20, late_fraction=0.15)
            truth = _windowed_truth(events, window_s, lateness_s)
            if truth[1]:
                break
        else:
            raise RuntimeError(f"no hidden data with late events for window {window_s} s, lateness {lateness_s} s")
        topic, group = kafka.fresh_topic("lab2.b.hidden", 1), kafka.name(f"lab2-b-{uuid.uuid4().hex[:8]}")
        _produce(topic, [(e["order_id"], data.to_json(e)) for e in events])
        runs.append((topic, group, window_s, lateness_s, len(events), truth))

    def verify(value: Any) -> None:
        assert _is_pair(value) and all(_is_pair(v) for v in value), "windowed_revenue returns a (dict, list) pair"
        for (topic, group, window_s, lateness_s, n, (want_revenue, want_late)), (revenue, late) in zip(
                runs, value, strict=True):
            setting = f"window {window_s} s, lateness {lateness_s} s"
            assert isinstance(revenue, dict) and isinstance(late, list), "return a (dict, list) pair"
            assert late == want_late, f"{setting}: {len(late)} late events reported, {len(want_late)} expected"
            assert set(revenue) == set(want_revenue), f"{setting}: the (window, region) keys differ"
            assert all(isinstance(revenue[k], int | float) and abs(revenue[k] - want_revenue[k]) < 0.011
                       for k in want_revenue), f"{setting}: some window revenues are wrong"
            assert _committed(topic, group, 1) == n, f"{setting}: commit the offsets after processing"

    calls = ", ".join(f"windowed_revenue({t!r}, {g!r}, {w}, {lat})" for t, g, w, lat, _, _ in runs)
    return Hidden(call=f"({calls})", verify=verify, cleanup=lambda: kafka.delete_topics([r[0] for r in runs]))


def part_c_tests(rng: random.Random) -> Hidden:
    """route_malformed on a hidden topic with several partitions."""
    seed, partitions = rng.randrange(2**31), rng.choice([2, 3, 4])
    events = data.order_events(n_orders=200, seed=seed)
    payloads, bad = data.with_malformed(events, rate=0.12, seed=seed)
    source, dlq = kafka.fresh_topic("lab2.c.hidden", partitions), kafka.fresh_topic("lab2.c.hidden.dlq", 1)
    _produce(source, [(e["order_id"], p) for e, p in zip(events, payloads, strict=True)])
    group = kafka.name(f"lab2-c-{uuid.uuid4().hex[:8]}")

    def verify(good: Any) -> None:
        dead = kafka.read_all(dlq, raw=True)
        want = len(events) - len(bad)
        assert good == want, f"{good!r} well-formed records counted, expected {want}"
        assert sorted(r.value for r in dead) == sorted(payloads[i] for i in bad), (
            f"the dead-letter topic should hold the {len(bad)} malformed values unchanged; "
            f"it holds {len(dead)} records")
        keyed = sorted((payloads[i], events[i]["order_id"]) for i in bad)
        assert sorted((r.value, r.key or "") for r in dead) == keyed, "keep each dead letter's key"
        assert all(dict(r.headers).get("error") for r in dead), 'give every dead letter an "error" header'

    return Hidden(call=f"route_malformed({source!r}, {dlq!r}, {group!r})", verify=verify,
                  cleanup=lambda: kafka.delete_topics([source, dlq]))


def part_d_tests(rng: random.Random) -> Hidden:
    """count_paid stopped at three hidden points, then run to the end: every paid order exactly once."""
    seed, partitions = rng.randrange(2**31), rng.choice([2, 3, 4])
    events = data.order_events(n_orders=120, seed=seed)
    stops = [rng.randint(5, 40), rng.randint(20, 80), 1]
    topic, group = kafka.fresh_topic("lab2.d.hidden", partitions), kafka.name(f"lab2-d-{uuid.uuid4().hex[:8]}")
    _produce(topic, [(e["order_id"], data.to_json(e)) for e in events])
    folder = hidden.scratch("lab2-d-")  # where the sandboxed kernel can write the table
    db_path = str(folder / "revenue.db")
    truth: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for e in events:
        if e["type"] == "order_paid":
            truth[e["region"]][0] += e["amount"]
            truth[e["region"]][1] += 1

    def verify(read: Any) -> None:
        assert isinstance(read, list) and len(read) == len(stops) + 1, "count_paid returns the number of records read"
        assert read[:len(stops)] == stops, f"each stopped call should read exactly max_events records: {read}"
        assert sum(read) == len(events), f"{sum(read)} records read over all calls, the topic holds {len(events)}"
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
            rows = {r: (t, n) for r, t, n in db.execute("SELECT region, total, orders FROM revenue")}
        assert set(rows) == set(truth), f"regions in the table: {sorted(rows)}"
        for region, (total, orders) in truth.items():
            assert rows[region][1] == orders, f"{region}: {rows[region][1]} paid orders counted, expected {orders}"
            assert abs(rows[region][0] - total) < 0.01, f"{region}: revenue {rows[region][0]}, expected {total:.2f}"

    def cleanup() -> None:
        kafka.delete_topics([topic])
        shutil.rmtree(folder, ignore_errors=True)

    return Hidden(call=f"[count_paid({topic!r}, {group!r}, {db_path!r}, max_events=n) for n in {stops}] + "
                       f"[count_paid({topic!r}, {group!r}, {db_path!r})]", verify=verify, cleanup=cleanup)
