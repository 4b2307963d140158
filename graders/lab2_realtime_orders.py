"""Hidden tests of Lab 2, judged by the grader outside the student's kernel (see coursekit.hidden).

Each function prepares one test cell's hidden inputs here (topics filled from seeds the kernel never
sees), names the call the kernel makes, and checks the reported value and what the call left in Kafka
or SQLite with the grader's own clients, against a truth computed here, independently of the
reference solution. Not released to students; hidden from the grader kernel.

The hidden tests check the rules each part states and its visible tests try, on other data: other seeds,
sizes and numbers of partitions; Part B's streams also have a delivery outage (arrival time far behind
event time) and events exactly at a window's closing boundary; Part D's calls are interrupted by crashes
(the group's committed offsets moved back by the grader's own client while no call runs), and each of
its calls runs in a fresh process; Part C's malformed records include boolean amounts.
"""

from __future__ import annotations

import math
import random
import shutil
import sqlite3
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from coursekit import data, hidden, kafka
from coursekit.hidden import Hidden

SETUP = "from confluent_kafka import Producer as _Producer\nfrom coursekit import data as _data, kafka as _kafka"
HUGE_LATENESS_S = 10**6   # Part B's window test: a lateness so large that no window closes


def _produce(topic: str, pairs: list[tuple[str, bytes]]) -> list[tuple[int, int]]:
    """Produce in order; the (partition, offset) of each record."""
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers(), "enable.idempotence": True})
    where: dict[int, tuple[int, int]] = {}
    for index, (key, value) in enumerate(pairs):
        def done(err: Any, msg: Any, index: int = index) -> None:
            if err is None:
                where[index] = (msg.partition(), msg.offset())
        producer.produce(topic, key=key, value=value, on_delivery=done)
    assert producer.flush(30) == 0 and len(where) == len(pairs), f"could not fill {topic}"
    return [where[i] for i in range(len(pairs))]


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
    """publish_orders: every event, keyed by order_id, over every partition, each order in list order."""
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
        used = {r.partition for r in records}
        assert used == set(range(partitions)), (
            f"the records use partitions {sorted(used)} of {partitions}: let the key choose the partition")
        position = {e["event_id"]: i for i, e in enumerate(events)}
        seen: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for r in sorted(records, key=lambda r: (r.partition, r.offset)):
            seen[r.value["order_id"]].append((r.partition, position[r.value["event_id"]]))
        for order_id, places in seen.items():
            assert len({p for p, _ in places}) == 1, f"order {order_id} is split across partitions"
            assert [i for _, i in places] == sorted(i for _, i in places), f"order {order_id} is out of order"

    return Hidden(setup=SETUP, verify=verify, cleanup=lambda: kafka.delete_topics([topic]),
                  call=f"publish_orders(_Producer({{'bootstrap.servers': _kafka.bootstrap_servers(), "
                       f"'enable.idempotence': True}}), {topic!r}, "
                       f"_data.order_events(n_orders=150, seed={seed}, late_fraction=0.2))")


# ---- Part B ---------------------------------------------------------------------------------------

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


def _ms(text: str) -> int:
    return round(data.parse_time(text).timestamp() * 1000)


def _iso(ms: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def _with_outage(events: list[dict[str, Any]], rng: random.Random, gap_s: int) -> list[dict[str, Any]]:
    """The same events in the same order, as if nothing arrived for ``gap_s`` seconds, then all at once.

    Only ``arrival_time`` changes (the topic order, and so the truth, does not): a watermark measured
    in arrival time jumps ahead at the end of the outage; one measured in event time does not.
    """
    out = [dict(e) for e in events]
    start = _ms(out[len(out) // 3 + rng.randrange(len(out) // 6)]["arrival_time"])
    for i, e in enumerate(out):
        at = _ms(e["arrival_time"])
        if start <= at < start + gap_s * 1000:
            e["arrival_time"] = _iso(start + gap_s * 1000 + i)
    return _monotone(out)


def _monotone(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Arrival times that never go backwards in topic order, and never before the event happened."""
    last = 0
    for e in events:
        last = max(last, _ms(e["arrival_time"]), _ms(e["event_time"]))
        e["arrival_time"] = _iso(last)
    return events


def _with_boundary(events: list[dict[str, Any]], rng: random.Random, window_s: int, lateness_s: int
                   ) -> list[dict[str, Any]]:
    """Insert, at a random place, events that put the watermark 1 ms before, then exactly at, a window's end.

    After the first an order_paid event of the closing window is on time; after the second, one is late
    (watermark = window end), and so is an order_placed event: ``>`` instead of ``>=`` gets both wrong.
    """
    at = len(events) // 2 + rng.randrange(len(events) // 4)
    before = events[:at]
    seen = max(_ms(e["event_time"]) for e in before)
    width, late = window_s * 1000, lateness_s * 1000
    end = math.ceil((seen - late + 1) / width) * width          # the first window end the watermark can reach
    region = rng.choice(data.REGIONS)

    def event(name: str, kind: str, at_ms: int, amount: float) -> dict[str, Any]:
        return {"event_id": f"{name}-{kind.removeprefix('order_')}", "type": kind, "order_id": name,
                "customer_id": "C-edge", "region": region, "amount": amount, "event_time": _iso(at_ms),
                "arrival_time": _iso(max(at_ms, _ms(before[-1]["arrival_time"])))}

    edge = [
        event("O-edge-1", "order_placed", end + late - 1, 3.0),                   # watermark: end - 1 ms
        event("O-edge-2", "order_paid", end - rng.randint(1, width // 2), 7.25),  # its window is still open
        event("O-edge-3", "order_placed", end + late, 4.0),                       # watermark: end exactly
        event("O-edge-4", "order_paid", end - rng.randint(1, width // 2), 11.5),  # late
        event("O-edge-5", "order_placed", end - rng.randint(1, width // 2), 2.0),  # late too, of another type
    ]
    return _monotone([dict(e) for e in [*before, *edge, *events[at:]]])


def _stream(rng: random.Random, window_s: int, lateness_s: int, *, edge: bool, n_orders: int = 180
            ) -> list[dict[str, Any]]:
    """Order events with an outage longer than a window and its lateness, and (``edge``) boundary events."""
    events = data.order_events(n_orders=n_orders, seed=rng.randrange(2**31), minutes=20, late_fraction=0.15)
    events = _with_outage(events, rng, gap_s=window_s + min(lateness_s, 120) + 30)
    return _with_boundary(events, rng, window_s, lateness_s) if edge else events


def _windowed_runs(rng: random.Random, settings: list[tuple[int, int]], *, edge: bool = True, one_topic: bool = False,
                   n_orders: int = 180) -> list[tuple[Any, ...]]:
    """One hidden topic per setting (``one_topic``: one for all, without boundary events), a group per call."""
    runs, events, topic = [], [], ""
    for window_s, lateness_s in settings:
        if not (one_topic and events):
            events = _stream(rng, window_s, lateness_s, edge=edge, n_orders=n_orders)
            topic = kafka.fresh_topic("lab2.b.hidden", 1)
            _produce(topic, [(e["order_id"], data.to_json(e)) for e in events])
        truth = _windowed_truth(events, window_s, lateness_s)
        runs.append((topic, kafka.name(f"lab2-b-{uuid.uuid4().hex[:8]}"), window_s, lateness_s, len(events), truth))
    return runs


def _check_windows(runs: list[tuple[Any, ...]], value: Any, *, late_too: bool) -> None:
    assert isinstance(value, list) and len(value) == len(runs) and all(_is_pair(v) for v in value), \
        "windowed_revenue returns a (dict, list) pair"
    for (_, _, window_s, lateness_s, _, (want_revenue, want_late)), (revenue, late) in zip(runs, value, strict=True):
        setting = f"window {window_s} s, lateness {lateness_s} s"
        assert isinstance(revenue, dict) and isinstance(late, list), "return a (dict, list) pair"
        if late_too:
            assert late == want_late, f"{setting}: {len(late)} late events reported, {len(want_late)} expected"
        else:
            assert late == [], f"{setting}: {len(late)} events reported late, where no window ever closes"
        assert set(revenue) == set(want_revenue), f"{setting}: the (window, region) keys differ"
        assert all(isinstance(revenue[k], int | float) and abs(revenue[k] - want_revenue[k]) < 0.011
                   for k in want_revenue), f"{setting}: some window revenues are wrong"


def _b_cleanup(runs: list[tuple[Any, ...]]) -> Any:
    return lambda: kafka.delete_topics(sorted({r[0] for r in runs}))


def _b_call(runs: list[tuple[Any, ...]]) -> str:
    return "[" + ", ".join(f"windowed_revenue({t!r}, {g!r}, {w}, {lat})" for t, g, w, lat, _, _ in runs) + "]"


def part_b_windows(rng: random.Random) -> Hidden:
    """windowed_revenue's windows, labels and sums: two window sizes, a lateness so large nothing is late."""
    runs = _windowed_runs(rng, [(60, HUGE_LATENESS_S), (rng.choice([120, 300]), HUGE_LATENESS_S)], edge=False,
                          one_topic=True)
    return Hidden(call=_b_call(runs), verify=lambda value: _check_windows(runs, value, late_too=False),
                  cleanup=_b_cleanup(runs))


def part_b_watermark(rng: random.Random) -> Hidden:
    """windowed_revenue's watermark: two settings, streams with an outage and events at the boundary."""
    runs = _windowed_runs(rng, [(rng.choice([60, 120]), rng.choice([10, 20])), (300, rng.choice([60, 90]))])
    return Hidden(call=_b_call(runs), verify=lambda value: _check_windows(runs, value, late_too=True),
                  cleanup=_b_cleanup(runs))


def part_b_commit(rng: random.Random) -> Hidden:
    """windowed_revenue commits the group's offsets once the topic is processed."""
    runs = _windowed_runs(rng, [(60, rng.choice([10, 20]))], n_orders=60)
    topic, group, _, _, n, _ = runs[0]

    def verify(value: Any) -> None:
        committed = _committed(topic, group, 1)
        assert committed == n, f"the group's committed offset is {committed}, the topic holds {n} records"

    return Hidden(call=_b_call(runs), verify=verify, cleanup=_b_cleanup(runs))


# ---- Part C ---------------------------------------------------------------------------------------

def part_c_tests(rng: random.Random) -> Hidden:
    """route_malformed on a hidden topic with several partitions."""
    seed, partitions = rng.randrange(2**31), rng.choice([2, 3, 4])
    events = data.order_events(n_orders=200, seed=seed)
    payloads, bad = data.with_malformed(events, rate=0.12, seed=seed)
    # boolean amounts (True >= 0 in Python), which data.with_malformed does not make: the grader's own
    for i, flag in zip(rng.sample(sorted(set(range(len(events))) - bad), 3), (True, False, True), strict=False):
        payloads[i] = data.to_json({**events[i], "amount": flag})
        bad.add(i)
    # one order with a long history of large events: over 1 MiB in its partition, more than one fetch brings
    # (librdkafka's max.partition.fetch.bytes), so a consumer that stops at the first end of a partition it
    # reaches (another one's) stops before reading it all, however fast the machine
    for k in range(150):
        noted = {**events[0], "event_id": f"{events[0]['event_id']}-n{k}", "note": "x" * 8000}
        events.append(noted)
        payloads.append(data.to_json(noted))
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
        committed = _committed(source, group, partitions)
        assert committed == len(events), f"the group committed {committed} of the {len(events)} records"

    return Hidden(call=f"route_malformed({source!r}, {dlq!r}, {group!r})", verify=verify,
                  cleanup=lambda: kafka.delete_topics([source, dlq]))


# ---- Part D ---------------------------------------------------------------------------------------

class _Crashes:
    """The grader's side of Part D's crashes, run in a thread of the grader while the kernel calls count_paid.

    After call k the kernel writes ``stopped-k`` in a folder both can write and waits for ``resumed-k``;
    meanwhile no call runs, and the grader moves the group's committed offsets back (with its own
    client) to the last order_paid record read of each partition, as a worker killed between its
    database write and its offset commit leaves them. A kernel that skips this handshake fails.
    """

    def __init__(self, folder: Path, topic: str, group: str, paid: dict[int, list[int]], crashes: int) -> None:
        self.folder, self.topic, self.group, self.paid, self.crashes = folder, topic, group, paid, crashes
        self.done: list[int] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="lab2-crashes", daemon=True)
        self.thread.start()

    def run(self) -> None:
        for k in range(1, self.crashes + 1):
            while not (self.folder / f"stopped-{k}").exists():
                if self.stop.wait(0.05):
                    return
            try:
                self.rewind()
                self.done.append(k)
            except Exception as exc:  # noqa: BLE001 - reported by verify
                self.errors.append(f"{type(exc).__name__}: {exc}")
            (self.folder / f"resumed-{k}").touch()

    def rewind(self) -> None:
        probe = Consumer({"bootstrap.servers": kafka.bootstrap_servers(), "group.id": self.group,
                          "enable.auto.commit": False})
        try:
            positions = probe.committed([TopicPartition(self.topic, p) for p in self.paid], timeout=10)
            back = []
            for tp in positions:
                earlier = [o for o in self.paid[tp.partition] if o < tp.offset]
                if earlier:
                    back.append(TopicPartition(self.topic, tp.partition, earlier[-1]))
            deadline = time.monotonic() + 5
            while back:
                try:
                    probe.commit(offsets=back, asynchronous=False)
                    break
                except KafkaException:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        finally:
            probe.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


CRASH_SETUP = '''
from coursekit.processes import in_a_fresh_process as _lab2_fresh


def _lab2_crash(folder, k):
    import os as _os, time as _time
    open(_os.path.join(folder, f"stopped-{k}"), "w").close()
    deadline = _time.monotonic() + 60
    while not _os.path.exists(_os.path.join(folder, f"resumed-{k}")):
        if _time.monotonic() > deadline:
            raise TimeoutError("the grader did not answer")
        _time.sleep(0.05)
'''


def part_d_tests(rng: random.Random) -> Hidden:
    """count_paid stopped at two hidden points, crashed after each, then run to the end; each call in a fresh
    process (forked by the kernel), so that nothing kept in the kernel's memory carries over."""
    seed, partitions = rng.randrange(2**31), rng.choice([2, 3, 4])
    events = data.order_events(n_orders=120, seed=seed)
    stops = [rng.randint(20, 60), rng.randint(1, 80)]
    crash_after = [0, 1]   # indices of the stopped calls after which the grader moves the offsets back
    topic, group = kafka.fresh_topic("lab2.d.hidden", partitions), kafka.name(f"lab2-d-{uuid.uuid4().hex[:8]}")
    where = _produce(topic, [(e["order_id"], data.to_json(e)) for e in events])
    paid: dict[int, list[int]] = {p: [] for p in range(partitions)}
    for e, (partition, offset) in zip(events, where, strict=True):
        if e["type"] == "order_paid":
            paid[partition].append(offset)
    folder = hidden.scratch("lab2-d-")  # where the sandboxed kernel can write the table
    db_path = str(folder / "revenue.db")
    truth: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for e in events:
        if e["type"] == "order_paid":
            truth[e["region"]][0] += e["amount"]
            truth[e["region"]][1] += 1
    crashes = _Crashes(folder, topic, group, {p: sorted(o) for p, o in paid.items()}, len(crash_after))

    def verify(read: Any) -> None:
        assert isinstance(read, list) and len(read) == len(stops) + 1, "count_paid returns the number of records read"
        assert read[:len(stops)] == stops, f"each stopped call should read exactly max_events records: {read}"
        assert isinstance(read[-1], int) and read[-1] >= len(events) - sum(stops), (
            f"the last call read {read[-1]!r} records: it should read every record not yet counted")
        crashes.close()
        assert not crashes.errors, (f"the grader could not move the group's offsets back ({crashes.errors[0]}): "
                                    "close your consumer before count_paid returns")
        assert crashes.done == list(range(1, len(crash_after) + 1)), "the crashes between the calls did not happen"
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
            rows = {r: (t, n) for r, t, n in db.execute("SELECT region, total, orders FROM revenue")}
        assert set(rows) == set(truth), f"regions in the table: {sorted(rows)}"
        for region, (total, orders) in truth.items():
            assert rows[region][1] == orders, f"{region}: {rows[region][1]} paid orders counted, expected {orders}"
            assert abs(rows[region][0] - total) < 0.01, f"{region}: revenue {rows[region][0]}, expected {total:.2f}"

    def cleanup() -> None:
        crashes.close()
        kafka.delete_topics([topic])
        shutil.rmtree(folder, ignore_errors=True)

    calls = []
    for i, n in enumerate(stops):
        calls.append(f"_lab2_fresh(count_paid, {topic!r}, {group!r}, {db_path!r}, max_events={n})")
        if i in crash_after:
            calls.append(f"_lab2_crash({str(folder)!r}, {crash_after.index(i) + 1})")
    calls.append(f"_lab2_fresh(count_paid, {topic!r}, {group!r}, {db_path!r})")
    # the crash points return None and are left out of the value: [read of each call]
    return Hidden(setup=CRASH_SETUP, verify=verify, cleanup=cleanup,
                  call="[_r for _r in [" + ", ".join(calls) + "] if _r is not None]")
