"""Brightcart data: deterministic for a seed, sized by a parameter, shaped like the case study."""

from __future__ import annotations

import itertools
import json

import pandas as pd

from coursekit import data


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    pd.testing.assert_frame_equal(data.orders(300, seed=5), data.orders(300, seed=5))
    assert data.order_events(50, seed=5) == data.order_events(50, seed=5)
    assert data.order_events(50, seed=5) != data.order_events(50, seed=6)


def test_sizes_follow_the_parameter() -> None:
    assert len(data.customers(123)) == 123
    assert len(data.orders(1000)) == 1000
    assert len(data.order_events(100)) == 200, "each order has two lifecycle events"
    assert len(data.page_views(250)) == 250


def test_events_arrive_out_of_event_time_order() -> None:
    events = data.order_events(300, seed=1, late_fraction=0.1)
    arrivals = [e["arrival_time"] for e in events]
    assert arrivals == sorted(arrivals), "the list is in arrival order"
    times = [data.parse_time(e["event_time"]) for e in events]
    assert any(b < a for a, b in itertools.pairwise(times)), "some events arrive late"
    late = [data.parse_time(e["arrival_time"]) - data.parse_time(e["event_time"]) for e in events]
    assert max(late).total_seconds() <= 180 + 60, "lateness is bounded by max_lateness_s plus jitter"


def test_order_lifecycle_is_consistent() -> None:
    events = data.order_events(100, seed=2)
    by_order: dict[str, list[dict]] = {}
    for e in events:
        by_order.setdefault(e["order_id"], []).append(e)
    for evs in by_order.values():
        kinds = sorted(e["type"] for e in evs)
        assert kinds[1] == "order_placed" and kinds[0] in ("order_cancelled", "order_paid")
        placed = next(e for e in evs if e["type"] == "order_placed")
        other = next(e for e in evs if e["type"] != "order_placed")
        assert other["event_time"] > placed["event_time"]
    assert {e["region"] for e in events} <= set(data.REGIONS)


def test_events_round_trip_as_json() -> None:
    event = data.order_events(1)[0]
    assert data.from_json(data.to_json(event)) == event
    json.dumps(event)


def test_sensor_readings_have_spikes_to_find() -> None:
    readings = data.sensor_readings(1200, seed=4, fault_rate=0.02)
    assert readings["temp_c"].median() < 5
    assert (readings["temp_c"] > 7).sum() > 0
