"""Operations helpers of lesson 09: the month of runs, burn rates, planted incidents, running models."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from coursekit import data, ops


def test_refresh_runs_are_seeded_and_plant_what_they_say() -> None:
    runs = ops.refresh_runs(days=30, seed=9)
    pd.testing.assert_frame_equal(runs, ops.refresh_runs(days=30, seed=9))
    assert not runs.equals(ops.refresh_runs(days=30, seed=10))
    assert len(runs) == 30 * 24 * 6 and runs["started_at"].is_monotonic_increasing
    day = (runs["started_at"] - runs["started_at"].iloc[0]) / pd.Timedelta(days=1)
    in_outage = (day >= 9.55) & (day < 9.55 + 80 / 1440)
    assert in_outage.sum() == 8 and (runs.loc[in_outage, "status"] == "failed").all()
    took = (runs["finished_at"] - runs["started_at"]).dt.total_seconds() / 60
    slow = (day >= 19.3) & (day < 22.8)
    assert took[slow].median() > 3 * took[~slow].median()
    assert (runs["data_until"] < runs["started_at"]).all()
    late = (day >= 25.12) & (day < 25.12 + 4 / 24) & (runs["status"] == "success")
    assert (runs.loc[late, "rows_loaded"] < runs.loc[late, "rows_expected"]).any()
    assert (runs.loc[~late & (runs["status"] == "success"), "rows_loaded"]
            == runs.loc[~late & (runs["status"] == "success"), "rows_expected"]).all()
    quiet = ops.refresh_runs(days=2, seed=9, outage=None, slow=None, late_source=None, fail_rate=0.0)
    assert (quiet["status"] == "success").all() and (quiet["rows_loaded"] == quiet["rows_expected"]).all()


def test_burn_rate_is_the_bad_fraction_over_the_budget() -> None:
    minutes = pd.date_range("2026-11-01", periods=120, freq="1min", tz="UTC")
    bad = pd.Series(False, index=minutes)
    bad.iloc[60:66] = True                                     # 6 bad minutes in the second hour
    rate = ops.burn_rate(bad, "1h", slo=0.99)
    assert rate.iloc[59] == 0 and rate.iloc[-1] == pytest.approx(10.0)    # 10 % bad / 1 % allowed
    assert ops.burn_rate(bad, "5min", slo=0.99).iloc[64] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="fraction"):
        ops.burn_rate(bad, "1h", slo=99)
    with pytest.raises(ValueError, match="sorted DatetimeIndex"):
        ops.burn_rate(bad.iloc[::-1], "1h", slo=0.99)


def test_workbook_thresholds_follow_from_the_budget_they_spend() -> None:
    month = pd.Timedelta(days=30)
    for alert in ops.WORKBOOK_ALERTS:
        assert alert.burn == pytest.approx(alert.budget_spent * month / pd.Timedelta(alert.long))
        assert pd.Timedelta(alert.short) * 12 == pd.Timedelta(alert.long)
    assert [a.severity for a in ops.WORKBOOK_ALERTS] == ["page", "page", "ticket"]


def test_plant_unit_change_touches_only_later_attempts() -> None:
    payments = data.payments(200, seed=3)
    since = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    broken = ops.plant_unit_change(payments, since)
    after = payments["created_at"] >= since
    assert after.any() and (~after).any()
    assert (broken.loc[~after, "amount_cents"] == payments.loc[~after, "amount_cents"]).all()
    assert (broken.loc[after, "amount_cents"] == (payments.loc[after, "amount_cents"] / 100).round()).all()
    assert broken["amount_cents"].dtype == payments["amount_cents"].dtype
    assert "amount_cents" in payments and payments is not broken


def test_run_models_builds_in_dependency_order_and_can_keep_going() -> None:
    tables = {"orders": data.orders(50, seed=1)}
    models = {"top": "SELECT r.region, r.n FROM per_region AS r ORDER BY r.n DESC LIMIT 1",
              "per_region": "SELECT o.region, COUNT(*) AS n FROM orders AS o GROUP BY o.region"}
    out = ops.run_models(models, tables)
    assert list(out) == ["top", "per_region"] and out["per_region"]["n"].sum() == 50
    assert out["top"]["n"].iloc[0] == out["per_region"]["n"].max()
    broken = {**models, "per_region": "SELECT o.region, SUM(o.nothing) AS n FROM orders AS o GROUP BY o.region"}
    kept = ops.run_models(broken, tables, errors="keep")
    assert isinstance(kept["per_region"], duckdb.Error) and isinstance(kept["top"], duckdb.Error)
    with pytest.raises(duckdb.Error):
        ops.run_models(broken, tables)
    with pytest.raises(ValueError, match="neither sources nor models"):
        ops.run_models({"x": "SELECT * FROM nowhere"}, tables)
    with pytest.raises(ValueError, match="cycle"):
        ops.run_models({"a": "SELECT * FROM b", "b": "SELECT * FROM a"}, tables)
    assert ops.changed_columns(out, ops.run_models(models, tables)) == set()
    assert ops.changed_columns(out, kept) == {"per_region.region", "per_region.n", "top.region", "top.n"}


def test_timeline_sorts_events() -> None:
    later, earlier = datetime(2026, 11, 1, 3, tzinfo=UTC), datetime(2026, 11, 1, 2, tzinfo=UTC)
    assert list(ops.timeline({"restored": later, "paged": earlier})["event"]) == ["paged", "restored"]


def test_delta_history_is_newest_first_with_the_loads_metadata(tmp_path: Path) -> None:
    from deltalake import CommitProperties, write_deltalake

    uri, frame = str(tmp_path / "t"), pd.DataFrame({"x": [1, 2]})
    loaded = CommitProperties(custom_metadata={"run_at": "02:00", "git_sha": "4b1c"})
    write_deltalake(uri, frame, commit_properties=loaded)
    write_deltalake(uri, frame, mode="append")
    history = ops.delta_history(uri)
    assert list(history["version"]) == [1, 0] and history.loc[0, "mode"] == "Append"
    assert history.loc[1, "git_sha"] == "4b1c" and history.loc[0, "git_sha"] is None
    assert history.loc[0, "rows added"] == 2 and history["reason"].isna().all()


def test_code_owners_takes_the_last_matching_pattern() -> None:
    text = "# general first\n*  @all\n/models/  @models\n/models/marts/  @marts @leads\n"
    assert ops.code_owners("models/marts/orders_daily.sql", text) == ["@marts", "@leads"]
    assert ops.code_owners("models/orders/orders.sql", text) == ["@models"]
    assert ops.code_owners("README.md", text) == ["@all"]
    assert ops.code_owners("README.md", "/models/  @models\n") == []
