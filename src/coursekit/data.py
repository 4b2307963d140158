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


_FIRST = ("Ada", "Ben", "Cleo", "Dev", "Ema", "Finn", "Gia", "Hugo", "Isla", "Jon", "Kai", "Lena", "Milo", "Nia",
          "Omar", "Pia", "Raj", "Sara", "Tom", "Uma", "Vic", "Wen", "Yusuf", "Zoe")
_LAST = ("Okafor", "Silva", "Novak", "Tanaka", "Murphy", "Kowalski", "Haddad", "Larsen", "Moreau", "Rossi",
         "Singh", "Schmidt", "Garcia", "Kim", "Nguyen", "Petrov")


def customer_profiles(n: int = 200, seed: int = 7) -> pd.DataFrame:
    """The *customers* domain's profiles: :func:`customers` plus personal data (synthetic PII).

    Same ids, regions, segments and sign-up dates as ``customers(n, seed)``, with ``name``, ``email``
    (on the reserved ``example.com`` domain), ``phone`` (UK numbers reserved for drama, +44 7700 900xxx),
    ``postcode`` and ``birth_year``: personal data a governance policy must classify and mask.
    """
    base = customers(n, seed)
    rng = np.random.default_rng(seed + 11)
    first = rng.choice(_FIRST, size=n)
    last = rng.choice(_LAST, size=n)
    return base.assign(
        name=[f"{f} {la}" for f, la in zip(first, last, strict=True)],
        email=[f"{f.lower()}.{la.lower()}{i}@example.com" for i, (f, la) in enumerate(zip(first, last, strict=True))],
        phone=[f"+44 7700 900{int(x):03d}" for x in rng.integers(0, 1000, n)],
        postcode=[f"{r[0].upper()}{int(x)} {int(y)}AB" for r, x, y in zip(base["region"], rng.integers(1, 30, n),
                                                                        rng.integers(1, 10, n), strict=True)],
        birth_year=rng.integers(1950, 2007, n),
    )


def payments(n_orders: int = 500, seed: int = 7, *, n_customers: int = 200, start: datetime = EPOCH,
             minutes: float = 60.0, decline_rate: float = 0.12, refund_rate: float = 0.04) -> pd.DataFrame:
    """The *payments* domain: one row per payment **attempt**, amounts in minor units (cents).

    Most orders of ``orders(n_orders, seed, ...)`` are paid at the first attempt; about
    ``decline_rate`` have a declined attempt first (about a quarter of those are never paid), and
    about ``refund_rate`` of captured payments are refunded later (``status='refunded'``,
    ``refunded_at`` set). ``amount_cents`` is the order's amount in cents, ``currency`` is EUR.
    """
    rng = np.random.default_rng(seed + 2)
    table = orders(n_orders, seed, n_customers=n_customers, start=start, minutes=minutes)
    rows: list[dict[str, Any]] = []
    for row in table.itertuples(index=False):
        at = row.placed_at.to_pydatetime() + timedelta(seconds=float(rng.uniform(5, 90)))
        method = str(rng.choice(["card", "wallet", "voucher"], p=[0.7, 0.25, 0.05]))
        cents = round(row.amount * 100)
        attempts = ["declined"] if rng.random() < decline_rate else []
        if not attempts or rng.random() > 0.25:
            attempts.append("captured")
        for k, status in enumerate(attempts, start=1):
            refunded = status == "captured" and rng.random() < refund_rate
            rows.append({
                "payment_id": f"P{row.order_id[1:]}-{k}", "order_id": row.order_id, "attempt": k,
                "method": method, "status": "refunded" if refunded else status,
                "amount_cents": cents, "currency": "EUR", "created_at": at,
                "refunded_at": at + timedelta(days=float(rng.uniform(1, 10))) if refunded else None,
            })
            at += timedelta(seconds=float(rng.uniform(20, 120)))
    frame = pd.DataFrame(rows)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    frame["refunded_at"] = pd.to_datetime(frame["refunded_at"], utc=True)
    return frame


def shipments(n_orders: int = 500, seed: int = 7, *, n_customers: int = 200, start: datetime = EPOCH,
              minutes: float = 60.0, failed_rate: float = 0.06) -> pd.DataFrame:
    """The *fulfilment* domain: one row per **parcel** shipped for a paid order of :func:`orders`.

    Orders that :func:`payments` (same arguments) never captured are not shipped. An order of more
    than ten items, or of frozen goods with more than five, ships as two parcels from two warehouses.
    ``delivered_at`` is when the courier scanned the parcel at the door; about ``failed_rate`` of
    parcels have a failed first attempt (``status='failed_attempt'``, ``delivered_at`` empty).
    """
    rng = np.random.default_rng(seed + 3)
    table = orders(n_orders, seed, n_customers=n_customers, start=start, minutes=minutes)
    pay = payments(n_orders, seed, n_customers=n_customers, start=start, minutes=minutes)
    paid = set(pay.loc[pay["status"].isin(["captured", "refunded"]), "order_id"])
    rows: list[dict[str, Any]] = []
    for row in table.itertuples(index=False):
        if row.order_id not in paid:
            continue
        split = row.items > 10 or (row.category == "frozen" and row.items > 5)
        parts = [row.items // 2, row.items - row.items // 2] if split else [row.items]
        houses = rng.choice(["W1", "W2", "W3"], size=len(parts), replace=False)
        for k, (count, house) in enumerate(zip(parts, houses, strict=True), start=1):
            dispatched = row.placed_at.to_pydatetime() + timedelta(minutes=float(rng.uniform(8, 25)))
            failed = rng.random() < failed_rate
            rows.append({
                "shipment_id": f"S{row.order_id[1:]}-{k}", "order_id": row.order_id, "parcel": k,
                "warehouse_id": str(house), "region": row.region, "items": int(count),
                "dispatched_at": dispatched,
                "delivered_at": None if failed else dispatched + timedelta(minutes=float(rng.gamma(4.0, 7.0))),
                "status": "failed_attempt" if failed else "delivered",
            })
    frame = pd.DataFrame(rows)
    frame["dispatched_at"] = pd.to_datetime(frame["dispatched_at"], utc=True)
    frame["delivered_at"] = pd.to_datetime(frame["delivered_at"], utc=True)
    return frame


def marketing_contacts(n_customers: int = 200, seed: int = 7, *, prospects: int = 80,
                       opt_in: float = 0.6) -> pd.DataFrame:
    """The *marketing* domain's contacts: everyone marketing may address, **not only** customers.

    About ``opt_in`` of the customers of ``customer_profiles(n_customers, seed)`` (same e-mail
    addresses, ``customer_id`` set) plus ``prospects`` newsletter sign-ups who never opened an
    account (``customer_id`` empty). ``consent`` records whether e-mail marketing is allowed.
    """
    rng = np.random.default_rng(seed + 4)
    people = customer_profiles(n_customers, seed)
    chosen = people[rng.random(n_customers) < opt_in]
    first = rng.choice(_FIRST, size=prospects)
    emails = [f"{f.lower()}{i}@example.org" for i, f in enumerate(first)]
    frame = pd.DataFrame({
        "email": list(chosen["email"]) + emails,
        "customer_id": list(chosen["customer_id"]) + [None] * prospects,
        "source": list(rng.choice(["checkout", "newsletter"], size=len(chosen), p=[0.7, 0.3]))
        + list(rng.choice(["newsletter", "campaign"], size=prospects)),
        "consent": list(rng.random(len(chosen)) < 0.8) + list(rng.random(prospects) < 0.95),
    })
    frame.insert(0, "contact_id", [f"M{seed % 1000:03d}-{i:05d}" for i in range(1, len(frame) + 1)])
    return frame


PIPELINES: tuple[str, ...] = ("orders_ingest", "payments_ingest", "shipments_ingest", "daily_revenue", "eta_features")


def pipeline_deployments(days: int = 90, seed: int = 7, *, start: datetime = EPOCH - timedelta(days=90),
                         per_day: float = 1.6, failure_rate: float = 0.15) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Brightcart's data-platform delivery log: ``(deployments, incidents)`` over ``days`` days.

    ``deployments``: one row per production deployment of one of :data:`PIPELINES` (``deploy_id``,
    ``pipeline``, ``committed_at`` of the oldest change it ships, ``deployed_at``, ``failed``:
    whether it caused an incident). Deployments happen on working days only (Monday to Friday,
    UTC); about ``failure_rate`` of them fail. ``incidents``: one row per failed deployment
    (``incident_id``, ``deploy_id``, ``pipeline``, ``started_at``, ``restored_at``). The team gets
    better over the period: lead times and restore times shrink in the second half.
    """
    rng = np.random.default_rng(seed + 5)
    deploys: list[dict[str, Any]] = []
    incidents: list[dict[str, Any]] = []
    for day in range(days):
        date = start + timedelta(days=day)
        if date.weekday() >= 5:
            continue
        improving = day >= days // 2
        for _ in range(int(rng.poisson(per_day * (1.3 if improving else 1.0)))):
            at = date.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(hours=float(rng.uniform(8, 18)))
            lead_h = float(rng.lognormal(np.log(20 if improving else 60), 0.7))
            failed = bool(rng.random() < failure_rate * (0.6 if improving else 1.0))
            deploy_id = f"D{len(deploys) + 1:04d}"
            pipeline = str(rng.choice(PIPELINES))
            deploys.append({"deploy_id": deploy_id, "pipeline": pipeline, "committed_at": at - timedelta(hours=lead_h),
                            "deployed_at": at, "failed": failed})
            if failed:
                began = at + timedelta(minutes=float(rng.uniform(5, 120)))
                restore_h = float(rng.lognormal(np.log(1.5 if improving else 6), 0.8))
                incidents.append({"incident_id": f"I{len(incidents) + 1:03d}", "deploy_id": deploy_id,
                                  "pipeline": pipeline, "started_at": began,
                                  "restored_at": began + timedelta(hours=restore_h)})
    deployments = pd.DataFrame(deploys).sort_values("deployed_at", ignore_index=True)
    for column in ("committed_at", "deployed_at"):
        deployments[column] = pd.to_datetime(deployments[column], utc=True)
    incident_frame = pd.DataFrame(incidents, columns=["incident_id", "deploy_id", "pipeline", "started_at",
                                                      "restored_at"])
    for column in ("started_at", "restored_at"):
        incident_frame[column] = pd.to_datetime(incident_frame[column], utc=True)
    return deployments, incident_frame


def daily_quality(days: int = 120, seed: int = 7, *, start: datetime = EPOCH - timedelta(days=120),
                  drift_day: int = 80, drift_sigma: float = 1.2, spike_day: int | None = 40) -> pd.DataFrame:
    """Daily health of the *orders* feed: ``date``, ``rows`` (orders landed) and ``null_rate`` of
    ``customer_id``, as a data-quality monitor records them.

    Volumes follow a weekly cycle (weekends busier) with noise; from ``drift_day`` on, the null rate
    creeps up by a sustained ``drift_sigma`` standard deviations (a client release that drops the
    field on some devices) — small enough that each single day stays under a fixed alert threshold
    of mean + 3σ. ``spike_day`` has one outage day (about half the usual rows). Dates are UTC days.
    """
    rng = np.random.default_rng(seed + 6)
    day = np.arange(days)
    dates = pd.date_range(start.date(), periods=days, freq="D")
    weekly = np.where(dates.dayofweek >= 5, 1.25, 1.0)
    rows = np.round(rng.normal(4000, 120, days) * weekly).astype(int)
    if spike_day is not None:
        rows[spike_day] = int(rows[spike_day] * 0.5)
    null_sd = 0.0015
    null_rate = rng.normal(0.010, null_sd, days) + np.where(day >= drift_day, drift_sigma * null_sd, 0.0)
    return pd.DataFrame({"date": dates.date, "rows": rows, "null_rate": np.clip(null_rate, 0, 1).round(5)})


# --- machine learning: the delivery-time (ETA) and payment-fraud models' data ---------------------------------

WAREHOUSES: tuple[str, ...] = ("W1", "W2", "W3")


def warehouse_load(seed: int = 7, *, start: datetime = EPOCH - timedelta(days=14), days: float = 14.0,
                   every_min: int = 15) -> pd.DataFrame:
    """Each warehouse's courier backlog, sampled every ``every_min`` minutes: a time-varying feature.

    Columns ``warehouse_id``, ``event_timestamp`` (when the sample was taken, UTC) and
    ``open_orders`` (parcels waiting for a courier): a daily cycle with an evening peak, a level of
    its own per warehouse, and noise. :func:`deliveries` takes longer when the backlog *at dispatch*
    is high, so the value to join is the last sample at or before the dispatch time.
    """
    rng = np.random.default_rng(seed + 11)
    times = pd.date_range(start, start + timedelta(days=days), freq=f"{every_min}min", tz="UTC", inclusive="left")
    hours = times.hour.to_numpy() + times.minute.to_numpy() / 60
    cycle = 10 + 8 * np.exp(-((hours - 18.5) ** 2) / 6) + 4 * np.exp(-((hours - 12.5) ** 2) / 4)
    frames = []
    for k, house in enumerate(WAREHOUSES):
        level = cycle * (0.8 + 0.25 * k) + rng.normal(0, 2.0, len(times))
        frames.append(pd.DataFrame({"warehouse_id": house, "event_timestamp": times,
                                    "open_orders": np.clip(np.round(level), 0, None).astype(int)}))
    return pd.concat(frames, ignore_index=True).sort_values(["event_timestamp", "warehouse_id"],
                                                            ignore_index=True)


def deliveries(n: int = 2000, seed: int = 7, *, start: datetime = EPOCH - timedelta(days=14), days: float = 14.0,
               shift_at: datetime | None = None, shift_scale: float = 1.5) -> pd.DataFrame:
    """Delivered orders, for the delivery-time (ETA) model: features at dispatch and the label.

    One row per order: ``order_id``, ``warehouse_id``, ``region``, ``dispatched_at``, ``distance_km``,
    ``items``, ``frozen`` (needs a cold box), ``raining`` (at dispatch), ``delivered_at`` and the label
    ``minutes`` (dispatch to door). Minutes grow with distance, items, frozen goods, rain and the
    warehouse's backlog at dispatch (:func:`warehouse_load`, same ``seed``, ``start`` and ``days``),
    plus skewed noise. From ``shift_at`` on, Brightcart serves farther suburbs: distances are
    ``shift_scale`` times longer (the drift lesson 21 monitors).
    """
    rng = np.random.default_rng(seed + 12)
    span = days * 86400
    offsets = np.sort(rng.uniform(0, span, n))
    dispatched = pd.to_datetime([start + timedelta(seconds=float(s)) for s in offsets], utc=True)
    house = rng.choice(WAREHOUSES, size=n, p=[0.45, 0.35, 0.2])
    distance = np.round(rng.gamma(2.2, 1.6, n) + 0.3, 2)
    if shift_at is not None:
        later = dispatched >= pd.Timestamp(shift_at)
        distance = np.where(later, np.round(distance * shift_scale, 2), distance)
    items = rng.integers(1, 15, n)
    frozen = rng.random(n) < 0.18
    raining = rng.random(n) < 0.22
    load = warehouse_load(seed, start=start, days=days)
    at_dispatch = pd.merge_asof(pd.DataFrame({"dispatched_at": dispatched, "warehouse_id": house}),
                                load.rename(columns={"event_timestamp": "dispatched_at"}),
                                on="dispatched_at", by="warehouse_id", direction="backward")
    backlog = at_dispatch["open_orders"].fillna(0).to_numpy()
    minutes = (6 + 3.1 * distance + 0.45 * items + 4.0 * frozen + 5.5 * raining + 0.55 * backlog
               + rng.gamma(2.0, 2.5, n))
    minutes = np.round(minutes, 1)
    return pd.DataFrame({
        "order_id": [f"D{seed % 1000:03d}-{i:06d}" for i in range(1, n + 1)],
        "warehouse_id": house,
        "region": rng.choice(REGIONS, size=n, p=[0.25, 0.2, 0.2, 0.2, 0.15]),
        "dispatched_at": dispatched,
        "distance_km": distance,
        "items": items,
        "frozen": frozen,
        "raining": raining,
        "delivered_at": dispatched + pd.to_timedelta(minutes, unit="min"),
        "minutes": minutes,
    })


def card_payments(n: int = 3000, seed: int = 7, *, n_customers: int = 400, start: datetime = EPOCH - timedelta(
                  days=28), days: float = 28.0, compromised: float = 0.05) -> pd.DataFrame:
    """Card payments, for the payment-fraud model: what is known at payment time, and the late label.

    One row per payment: ``payment_id``, ``customer_id``, ``created_at``, ``amount`` (EUR),
    ``new_device``, ``night`` (00:00–05:59 UTC), ``is_fraud`` (0/1) and ``label_at``, when the
    label became known: a fraud is confirmed by its **chargeback**, 2–20 days later; a genuine
    payment is known to be genuine once the 21-day chargeback window has passed (label delay).
    About ``compromised`` of the customers have their card stolen on some day; from then on,
    their payments are mostly fraud (larger, on new devices, at night). A customer's earlier
    chargebacks are a real signal, but only those known by ``created_at`` may be used: counting
    the chargebacks known today leaks the label (lesson 19).
    """
    rng = np.random.default_rng(seed + 13)
    people = np.array([f"C{i:05d}" for i in range(1, n_customers + 1)])
    who = rng.integers(0, n_customers, n)
    offsets = np.sort(rng.uniform(0, days * 86400, n))
    created = pd.Series(pd.to_datetime([start + timedelta(seconds=float(s)) for s in offsets], utc=True))
    stolen_from = {int(c): pd.Timestamp(start + timedelta(days=float(rng.uniform(0, days * 0.7))))
                   for c in rng.choice(n_customers, size=max(1, round(compromised * n_customers)), replace=False)}
    is_fraud = np.zeros(n, dtype=int)
    amount = np.round(rng.lognormal(3.3, 0.55, n), 2)
    new_device = rng.random(n) < 0.08
    for i in range(n):
        since = stolen_from.get(int(who[i]))
        if since is None or created[i] < since or rng.random() >= 0.75:
            continue
        is_fraud[i] = 1
        amount[i] = np.round(amount[i] * rng.uniform(1.5, 4.0), 2)
        new_device[i] = rng.random() < 0.7
        at_night = created[i].normalize() + pd.Timedelta(hours=float(rng.uniform(0, 6)))
        if rng.random() < 0.55 and at_night >= since:
            created[i] = at_night
    is_fraud |= (rng.random(n) < 0.004).astype(int)  # opportunistic fraud on any account
    delay = np.where(is_fraud == 1, rng.uniform(2, 20, n), 21.0)
    frame = pd.DataFrame({
        "customer_id": people[who],
        "created_at": created,
        "amount": amount,
        "new_device": new_device,
        "night": created.dt.hour < 6,
        "is_fraud": is_fraud,
    })
    frame["created_at"] = frame["created_at"].dt.floor("ms")
    frame["label_at"] = (frame["created_at"] + pd.to_timedelta(delay, unit="D")).dt.floor("ms")
    frame = frame.sort_values("created_at", ignore_index=True, kind="stable")
    frame.insert(0, "payment_id", [f"F{seed % 1000:03d}-{i:06d}" for i in range(1, n + 1)])
    return frame


def chargebacks(payments: pd.DataFrame) -> pd.DataFrame:
    """The chargeback feed of :func:`card_payments`: one row per fraud, when it became known.

    Columns ``customer_id``, ``payment_id`` and ``event_timestamp`` (the chargeback's arrival).
    """
    fraud = payments.loc[payments["is_fraud"] == 1, ["customer_id", "payment_id", "label_at"]]
    return fraud.rename(columns={"label_at": "event_timestamp"}).sort_values("event_timestamp", ignore_index=True)


def customer_risk(payments: pd.DataFrame, *, window_days: int = 90) -> pd.DataFrame:
    """A feature source for the fraud model: each customer's chargeback count over time.

    One row each time a customer's count changes, at the chargeback's arrival: ``customer_id``,
    ``event_timestamp`` and ``chargebacks_90d`` (chargebacks arrived in the last ``window_days``;
    decreases are not emitted, so with a ``window_days`` longer than the data it only grows).
    A point-in-time join takes the last row at or before the payment; the latest row per customer
    is what a naive join takes.
    """
    feed = chargebacks(payments)
    rows: list[dict[str, Any]] = []
    for customer, group in feed.groupby("customer_id", sort=True):
        times = list(group["event_timestamp"])
        for k, at in enumerate(times):
            recent = sum(1 for t in times[: k + 1] if t > at - pd.Timedelta(days=window_days))
            rows.append({"customer_id": customer, "event_timestamp": at, "chargebacks_90d": recent})
    frame = pd.DataFrame(rows, columns=["customer_id", "event_timestamp", "chargebacks_90d"])
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    frame["chargebacks_90d"] = frame["chargebacks_90d"].astype("int64")
    return frame.sort_values(["event_timestamp", "customer_id"], ignore_index=True)


def payment_events(payments: pd.DataFrame) -> list[Event]:
    """:func:`card_payments` as the events the payments service produces (no label: it is not known yet).

    Keys ``payment_id``, ``customer_id``, ``amount``, ``new_device``, ``event_time`` (ISO 8601).
    """
    return [{"payment_id": r.payment_id, "customer_id": r.customer_id, "amount": float(r.amount),
             "new_device": bool(r.new_device), "event_time": _iso(r.created_at.to_pydatetime())}
            for r in payments.itertuples(index=False)]
