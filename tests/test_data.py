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


def test_mesh_domains_agree_on_identifiers_and_amounts() -> None:
    orders = data.orders(400, seed=3)
    pay = data.payments(400, seed=3)
    ship = data.shipments(400, seed=3)
    assert set(pay["order_id"]) == set(orders["order_id"]), "every order has at least one payment attempt"
    cents = pay.merge(orders, on="order_id")
    assert (cents["amount_cents"] == (cents["amount"] * 100).round().astype(int)).all(), "amounts in cents"
    assert pay["payment_id"].is_unique and ship["shipment_id"].is_unique
    paid = set(pay.loc[pay["status"].isin(["captured", "refunded"]), "order_id"])
    assert set(ship["order_id"]) == paid, "exactly the paid orders are shipped"
    assert 0 < len(set(orders["order_id"]) - paid) < 40, "a few orders are never paid"
    per_order = ship.groupby("order_id")["items"].sum()
    assert (per_order == orders.set_index("order_id").loc[per_order.index, "items"]).all(), "parcels split the items"
    assert (ship.groupby("order_id").size() == 2).sum() > 20, "large orders ship as two parcels"
    assert ship["delivered_at"].isna().equals(ship["status"] == "failed_attempt")
    assert (pay.loc[pay["attempt"] > 1, "order_id"].isin(pay.loc[pay["status"] == "declined", "order_id"])).all()


def test_profiles_and_contacts_are_consistent_synthetic_pii() -> None:
    base = data.customers(150, seed=4)
    profiles = data.customer_profiles(150, seed=4)
    pd.testing.assert_frame_equal(profiles[base.columns], base)
    assert profiles["email"].is_unique and profiles["email"].str.endswith("@example.com").all()
    assert profiles["phone"].str.match(r"^\+44 7700 900\d{3}$").all(), "Ofcom's drama range only"
    contacts = data.marketing_contacts(150, seed=4, prospects=30)
    assert contacts["contact_id"].is_unique and contacts["email"].is_unique
    known = contacts.dropna(subset=["customer_id"]).merge(profiles, on="customer_id", suffixes=("", "_p"))
    assert (known["email"] == known["email_p"]).all(), "a customer's contact has the profile's e-mail"
    assert contacts["customer_id"].isna().sum() == 30, "prospects have no account"
    pd.testing.assert_frame_equal(data.payments(100, seed=9), data.payments(100, seed=9))
    pd.testing.assert_frame_equal(data.shipments(100, seed=9), data.shipments(100, seed=9))


def test_delivery_log_and_quality_series_carry_their_signals() -> None:
    deployments, incidents = data.pipeline_deployments(90, seed=7)
    assert deployments["deployed_at"].dt.weekday.max() <= 4, "working days only"
    assert (deployments["committed_at"] < deployments["deployed_at"]).all()
    assert set(incidents["deploy_id"]) == set(deployments.loc[deployments["failed"], "deploy_id"])
    assert (incidents["restored_at"] > incidents["started_at"]).all()
    half = deployments["deployed_at"].median()
    lead = deployments["deployed_at"] - deployments["committed_at"]
    assert lead[deployments["deployed_at"] > half].median() < lead[deployments["deployed_at"] <= half].median()
    quality = data.daily_quality(120, seed=7)
    base = quality["null_rate"][:60]
    assert not (quality["null_rate"] > base.mean() + 3 * base.std()).any(), "the drift stays under a 3-sigma alert"
    assert quality["null_rate"][80:].mean() > base.mean() + 0.5 * base.std(), "but it is there"
    assert quality["rows"][40] < 0.6 * quality["rows"].median(), "the outage day"


def test_ml_data_carry_their_signals_and_their_leak() -> None:
    eta = data.deliveries(1500, seed=3)
    pd.testing.assert_frame_equal(eta, data.deliveries(1500, seed=3))
    assert eta["dispatched_at"].is_monotonic_increasing and (eta["minutes"] > 0).all()
    assert eta["minutes"].corr(eta["distance_km"]) > 0.5, "distance drives delivery time"
    later = data.deliveries(1500, seed=3, shift_at=data.EPOCH - pd.Timedelta(days=7))
    assert later["distance_km"].tail(300).mean() > 1.3 * eta["distance_km"].tail(300).mean(), "the drift is there"
    pay = data.card_payments(3000, seed=3)
    assert 0.01 < pay["is_fraud"].mean() < 0.08 and pay["payment_id"].is_unique
    assert (pay["label_at"] > pay["created_at"]).all(), "a label is known only after the payment"
    risk = data.customer_risk(pay)
    assert len(risk) == int(pay["is_fraud"].sum()), "one row per chargeback's arrival"
    # the leak: the count known *today* includes the payment's own chargeback; the count known then does not
    frauds = pay[pay["is_fraud"] == 1]
    known_now = frauds["customer_id"].map(risk.groupby("customer_id")["chargebacks_90d"].max())
    assert (known_now >= 1).all()
    first = frauds.groupby("customer_id")["created_at"].min()
    at_first = pd.merge_asof(first.reset_index().sort_values("created_at"),
                             risk.rename(columns={"event_timestamp": "created_at"}), on="created_at",
                             by="customer_id")["chargebacks_90d"]
    assert at_first.isna().all(), "no chargeback is known when a customer's first fraud happens"
    events = data.payment_events(pay.head(3))
    assert json.loads(data.to_json(events[0])) == events[0] and "is_fraud" not in events[0]
