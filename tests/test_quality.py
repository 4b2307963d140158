"""coursekit.quality: the orders pipeline and its planted defects, quarantine, and the anomaly checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from coursekit import contracts, data, quality


@pytest.fixture(scope="module")
def inputs() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return quality.sample_inputs()


def test_every_defect_is_one_edit_of_the_source() -> None:
    source = quality.pipeline_source()
    for name, defect in quality.DEFECTS.items():
        assert source.count(defect.find) == 1, name
        assert quality.pipeline_source(name) != source
    with pytest.raises(KeyError):
        quality.pipeline_source("no_such_defect")


def test_the_sample_inputs_hold_every_case(inputs: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    orders, payments, _ = inputs
    attempts = payments.groupby("order_id")["status"].agg(list)
    assert (attempts.map(tuple) == ("declined", "captured")).any(), "paid after a declined attempt"
    assert (attempts.map(tuple) == ("declined",)).any(), "never paid"
    assert attempts.map(lambda s: "refunded" in s).any(), "refunded"
    assert orders["order_id"].duplicated().sum() == 2, "two orders delivered twice"


def test_the_correct_pipeline(inputs: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    orders, payments, customers = inputs
    pipeline = quality.load_pipeline()
    paid = pipeline.paid_orders(orders, payments, customers)
    captured = payments[payments["status"] == "captured"]
    assert paid["order_id"].is_unique and set(paid["order_id"]) == set(captured["order_id"])
    basket = orders.drop_duplicates("order_id").set_index("order_id")["amount"]
    assert np.allclose(paid["amount"], paid["order_id"].map(basket))
    assert (paid["order_date"] == paid["placed_at"].dt.tz_convert("UTC").dt.date).all()
    daily = pipeline.daily_revenue(paid)
    assert daily["revenue_eur"].sum() == pytest.approx(captured["amount_cents"].sum() / 100)


def test_each_defect_changes_what_it_says(inputs: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    orders, payments, customers = inputs
    late = orders.assign(placed_at=orders["placed_at"].dt.normalize() + pd.Timedelta(hours=23, minutes=30))
    correct = quality.load_pipeline().paid_orders(orders, payments, customers)
    out = {name: quality.load_pipeline(name).paid_orders(orders, payments, customers) for name in quality.DEFECTS}
    assert len(out["dropped_filter"]) > len(correct) and not out["dropped_filter"]["order_id"].is_unique
    assert len(out["wrong_join_key"]) > 5 * len(correct)
    assert np.allclose(out["unit_error"]["amount"], 100 * correct["amount"])
    assert len(out["duplicated_rows"]) > len(correct)
    pd.testing.assert_frame_equal(out["timezone_slip"], correct)   # invisible on morning orders
    slipped = quality.load_pipeline("timezone_slip").paid_orders(late, payments, customers)
    assert (slipped["order_date"] == pd.Timestamp("2026-11-03").date()).all()
    assert (quality.load_pipeline().paid_orders(late, payments, customers)["order_date"]
            == pd.Timestamp("2026-11-02").date()).all()


def test_landing_batch_plants_what_it_says() -> None:
    planted = quality.landing_batch(seed=22)
    assert planted.defects.value_counts().to_dict() == {
        "amount in cents": 3, "region not in the list": 3, "no customer_id": 2, "replayed copy": 2}
    cents = planted.batch.loc[planted.defects[planted.defects == "amount in cents"].index, "amount"]
    assert cents.min() < planted.clean["amount"].max(), "no cap on the amount separates cents from wholesale"
    assert (planted.clean["amount"] / planted.clean["items"]).max() <= 40


def test_landing_batch_can_break_the_items_and_amount_rules_too() -> None:
    plain, more = quality.landing_batch(seed=24), quality.landing_batch(seed=24, over_limit=1, zero_amounts=1)
    kinds = more.defects.value_counts().to_dict()
    assert kinds["more than 50 items"] == 1 and kinds["amount not positive"] == 1
    assert len(more.defects) == len(plain.defects) + 2
    bulk = more.batch.loc[more.defects[more.defects == "more than 50 items"].index]
    assert (bulk["items"] > 50).all() and (bulk["amount"] / bulk["items"] <= 40).all(), "only the items rule sees it"
    zero = more.batch.loc[more.defects[more.defects == "amount not positive"].index]
    assert (zero["amount"] == 0).all()


def test_quarantine_splits_rejects_and_names_reasons() -> None:
    planted = quality.landing_batch(seed=21, cents_rows=0)
    schema = pa.DataFrameSchema({
        "order_id": pa.Column(str, unique=True, report_duplicates="exclude_first"),
        "customer_id": pa.Column(str),
        "region": pa.Column(str, pa.Check.isin(data.REGIONS)),
    })
    valid, held = quality.quarantine(planted.batch, schema)
    assert set(held.index) == set(planted.defects.index) and len(valid) + len(held) == len(planted.batch)
    assert held["reason"].str.len().gt(0).all()
    with pytest.raises(quality.BatchRejected, match="fails as a whole"):
        quality.quarantine(planted.batch, schema.add_columns({"items": pa.Column(float)}))
    with pytest.raises(quality.BatchRejected, match="more than"):
        quality.quarantine(planted.batch, schema, max_bad_fraction=0.01)


def test_row_rules_come_from_the_contract() -> None:
    rules = quality.row_rules(contracts.load("orders"), order_by="seq")
    assert rules["customer_id missing"] == "customer_id IS NULL"
    assert "row_number() OVER (PARTITION BY order_id ORDER BY seq) > 1" in rules.values()
    assert "items < 1 OR items > 50" in rules.values()
    assert any(rule.startswith("region NOT IN ('north'") for rule in rules.values())


def test_sla_robust_z_and_psi() -> None:
    assert quality.sla(contracts.load("orders"), "latency") == pd.Timedelta(hours=1)
    assert quality.sla({"slaProperties": [{"property": "retention", "value": 3, "unit": "y"}]},
                       "retention") == pd.Timedelta(days=3 * 365)
    values = pd.Series([100.0, 102, 98, 101, 99] * 8 + [50.0])
    z = quality.robust_z(values, window=28, min_periods=14)
    assert z.iloc[:14].isna().all() and z.iloc[14:].notna().all() and z.iloc[-1] < -10
    reference = data.orders(500, 7)["amount"]
    assert quality.psi(reference, reference) == pytest.approx(0.0, abs=1e-9)
    assert quality.psi(reference, data.orders(500, 8)["amount"]) < 0.1 < quality.psi(reference, 100 * reference)


def test_volume_history_breaks_three_days_that_depend_on_the_seed() -> None:
    daily, broken = quality.volume_history(seed=7)
    _, broken_other = quality.volume_history(seed=31)
    assert len(daily) == 140 and len(broken) == 3 and broken != broken_other
    assert pd.Timestamp(broken[1]).dayofweek == 5 and pd.Timestamp(broken[2]).dayofweek == 2


def test_ks_2samp_is_scipys_statistic_and_asymptotic_tail() -> None:
    import scipy.stats

    for n, m, factor in ((500, 500, 1.05), (5000, 5000, 1.05), (300, 200, 1.3), (10, 10, 1.0)):
        a, b = data.orders(n, 7)["amount"], data.orders(m, 8)["amount"] * factor
        statistic, p_value = quality.ks_2samp(a, b)
        assert statistic == pytest.approx(scipy.stats.ks_2samp(a, b).statistic)
        en = n * m / (n + m)
        assert p_value == pytest.approx(scipy.stats.kstwobign.sf(np.sqrt(en) * statistic), abs=1e-9)
