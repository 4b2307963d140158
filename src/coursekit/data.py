"""Brightcart, the course's online grocery marketplace: seeded generators for its data.

The same ``seed`` gives the same rows on every machine; ``n`` sizes the output from a few hundred
rows (lessons) to millions (benchmarks). Timestamps are UTC. Events are plain ``dict``s that
serialise to JSON as they are, ready to be produced to Kafka.

Domains: *orders*, *payments*, *fulfilment*, *customers*, *marketing* (see SYLLABUS.md).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central")
SEGMENTS: tuple[str, ...] = ("new", "regular", "loyal")
CATEGORIES: tuple[str, ...] = ("produce", "dairy", "bakery", "frozen", "pantry", "drinks")
EPOCH = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

Event = dict[str, Any]


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """Parse a Brightcart event timestamp (ISO 8601, ``Z`` for UTC)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def customers(n: int = 200, seed: int = 7) -> pd.DataFrame:
    """The *customers* domain: one row per customer with region, segment and sign-up date."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": [f"C{i:05d}" for i in range(1, n + 1)],
        "region": rng.choice(REGIONS, size=n, p=[0.25, 0.2, 0.2, 0.2, 0.15]),
        "segment": rng.choice(SEGMENTS, size=n, p=[0.3, 0.5, 0.2]),
        "signup_date": (pd.Timestamp(EPOCH.date()) - pd.to_timedelta(rng.integers(1, 900, n), unit="D")).date,
    })


def orders(n: int = 500, seed: int = 7, *, n_customers: int = 200, start: datetime = EPOCH,
           minutes: float = 60.0) -> pd.DataFrame:
    """The *orders* domain: placed orders with customer, region, items, amount and placement time."""
    rng = np.random.default_rng(seed)
    people = customers(n_customers, seed)
    who = rng.integers(0, n_customers, n)
    offsets = np.sort(rng.uniform(0, minutes * 60, n))
    items = rng.integers(1, 15, n)
    amount = np.round(items * rng.lognormal(1.6, 0.35, n), 2)
    return pd.DataFrame({
        "order_id": [f"O{seed % 1000:03d}-{i:06d}" for i in range(1, n + 1)],
        "customer_id": people["customer_id"].to_numpy()[who],
        "region": people["region"].to_numpy()[who],
        "category": rng.choice(CATEGORIES, size=n),
        "items": items,
        "amount": amount,
        "placed_at": pd.to_datetime([start + timedelta(seconds=float(s)) for s in offsets], utc=True),
    })


def order_events(n_orders: int = 200, seed: int = 7, *, minutes: float = 10.0, start: datetime = EPOCH,
                 late_fraction: float = 0.05, max_lateness_s: float = 180.0,
                 cancel_rate: float = 0.08) -> list[Event]:
    """Order lifecycle events in the order they *arrive*, which is not the order they happened.

    Each order is ``order_placed``, then ``order_paid`` (or ``order_cancelled``) seconds later.
    Every event has ``event_time`` (when it happened) and ``arrival_time`` (when the platform saw
    it): usually a second or two later, but a ``late_fraction`` of events arrive up to
    ``max_lateness_s`` late (a phone that lost signal), so the list is out of event-time order.
    """
    rng = np.random.default_rng(seed)
    table = orders(n_orders, seed, start=start, minutes=minutes)
    events: list[Event] = []
    for row in table.itertuples(index=False):
        placed = row.placed_at.to_pydatetime()
        follow = "order_cancelled" if rng.random() < cancel_rate else "order_paid"
        for kind, at in (("order_placed", placed), (follow, placed + timedelta(seconds=float(rng.uniform(5, 90))))):
            delay = float(rng.exponential(1.5))
            if rng.random() < late_fraction:
                delay += float(rng.uniform(20, max_lateness_s))
            events.append({
                "event_id": f"{row.order_id}-{kind.removeprefix('order_')}",
                "type": kind,
                "order_id": row.order_id,
                "customer_id": row.customer_id,
                "region": row.region,
                "amount": float(row.amount),
                "event_time": _iso(at),
                "arrival_time": _iso(at + timedelta(seconds=delay)),
            })
    events.sort(key=lambda e: (e["arrival_time"], e["event_id"]))
    return events


def sensor_readings(n: int = 600, seed: int = 7, *, fridges: int = 6, start: datetime = EPOCH,
                    interval_s: float = 10.0, fault_rate: float = 0.01) -> pd.DataFrame:
    """Cold-chain readings from warehouse fridges (the edge): temperature in °C every ``interval_s``.

    Fridges hold about 3.5 °C; a ``fault_rate`` of readings are spikes (a door left open).
    """
    rng = np.random.default_rng(seed)
    per = max(1, n // fridges)
    frames = []
    for f in range(fridges):
        temps = 3.5 + np.cumsum(rng.normal(0, 0.05, per)) * 0.3 + rng.normal(0, 0.15, per)
        spikes = rng.random(per) < fault_rate
        temps[spikes] += rng.uniform(4, 9, spikes.sum())
        frames.append(pd.DataFrame({
            "fridge_id": f"W{f // 2 + 1}-F{f % 2 + 1}",
            "warehouse_id": f"W{f // 2 + 1}",
            "ts": pd.to_datetime([start + timedelta(seconds=i * interval_s) for i in range(per)], utc=True),
            "temp_c": np.round(temps, 2),
        }))
    return pd.concat(frames, ignore_index=True).sort_values(["ts", "fridge_id"], ignore_index=True)


def page_views(n: int = 1000, seed: int = 7, *, n_customers: int = 200, start: datetime = EPOCH,
               minutes: float = 60.0) -> pd.DataFrame:
    """The *marketing* domain's clickstream: page views by customer with a session id."""
    rng = np.random.default_rng(seed)
    people = customers(n_customers, seed)
    who = rng.integers(0, n_customers, n)
    pages = rng.choice(["home", "search", "product", "basket", "checkout"], size=n, p=[0.2, 0.3, 0.3, 0.12, 0.08])
    offsets = np.sort(rng.uniform(0, minutes * 60, n))
    return pd.DataFrame({
        "customer_id": people["customer_id"].to_numpy()[who],
        "session_id": [f"S{seed % 1000:03d}-{c:05d}-{int(o // 1800)}" for c, o in zip(who, offsets, strict=True)],
        "page": pages,
        "ts": pd.to_datetime([start + timedelta(seconds=float(s)) for s in offsets], utc=True),
    })


def to_json(event: Event) -> bytes:
    """Serialise an event for Kafka (UTF-8 JSON with sorted keys)."""
    return json.dumps(event, sort_keys=True).encode()


def from_json(payload: bytes) -> Event:
    """Inverse of :func:`to_json`."""
    return json.loads(payload)


REQUIRED_FIELDS: tuple[str, ...] = ("event_id", "type", "order_id", "region", "amount", "event_time")


def with_malformed(events: list[Event], rate: float = 0.05, seed: int = 7) -> tuple[list[bytes], set[int]]:
    """Serialise ``events`` and corrupt about ``rate`` of them, as a buggy client would.

    Returns the payloads (in order) and the indices of the corrupted ones. Corruptions: text that is
    not JSON, JSON that is not an object, a required field missing, an ``amount`` that is not a
    non-negative number, an ``event_time`` that is not a timestamp.
    """
    rng = np.random.default_rng(seed)
    payloads: list[bytes] = []
    bad: set[int] = set()
    for index, event in enumerate(events):
        if rng.random() >= rate:
            payloads.append(to_json(event))
            continue
        bad.add(index)
        kind = int(rng.integers(0, 5))
        broken = dict(event)
        if kind == 0:
            payloads.append(to_json(event)[:-7])  # truncated JSON
            continue
        if kind == 1:
            payloads.append(json.dumps([event["event_id"], event["amount"]]).encode())
            continue
        if kind == 2:
            broken.pop(REQUIRED_FIELDS[int(rng.integers(0, len(REQUIRED_FIELDS)))])
        elif kind == 3:
            broken["amount"] = ("12,50", -abs(event["amount"]) - 1.0, None)[int(rng.integers(0, 3))]
        else:
            broken["event_time"] = "yesterday"
        payloads.append(to_json(broken))
    return payloads, bad


def is_valid_event(payload: bytes) -> bool:
    """The course's definition of a well-formed order event (see :func:`with_malformed`)."""
    try:
        event = json.loads(payload)
    except ValueError:
        return False
    if not isinstance(event, dict) or any(f not in event for f in REQUIRED_FIELDS):
        return False
    amount = event["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
        return False
    try:
        parse_time(str(event["event_time"]))
    except ValueError:
        return False
    return True


def delivery_events(n_orders: int = 200, seed: int = 7, *, minutes: float = 10.0, start: datetime = EPOCH,
                    late_rate: float = 0.05) -> list[Event]:
    """The *fulfilment* domain: one ``delivery_completed`` event per paid order, in arrival order.

    Each has the ``promised_at`` slot and the ``delivered_at`` time (``event_time``); ``delay_s`` is
    their difference (negative when early). About ``late_rate`` of deliveries run well past the
    promise, more in the ``north`` region (rural routes). Orders and regions match
    :func:`order_events` for the same seed.
    """
    rng = np.random.default_rng(seed + 1)
    table = orders(n_orders, seed, start=start, minutes=minutes)
    events: list[Event] = []
    for row in table.itertuples(index=False):
        placed = row.placed_at.to_pydatetime()
        promised = placed + timedelta(minutes=float(rng.choice([30, 45, 60])))
        slow = rng.random() < late_rate * (2.0 if row.region == "north" else 1.0)
        delay = float(rng.normal(-120, 240)) + (float(rng.uniform(600, 2400)) if slow else 0.0)
        delivered = promised + timedelta(seconds=delay)
        events.append({
            "event_id": f"{row.order_id}-delivered",
            "type": "delivery_completed",
            "order_id": row.order_id,
            "region": row.region,
            "warehouse_id": f"W{int(rng.integers(1, 4))}",
            "promised_at": _iso(promised),
            "event_time": _iso(delivered),
            "delay_s": round(delay, 1),
            "arrival_time": _iso(delivered + timedelta(seconds=float(rng.exponential(2.0)))),
        })
    events.sort(key=lambda e: (e["arrival_time"], e["event_id"]))
    return events
