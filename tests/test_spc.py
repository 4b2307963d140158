"""coursekit.spc: the individuals chart's constant, the zone rules and the run-length estimate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coursekit import spc


def test_d2_is_the_mean_range_of_two_standard_normals() -> None:
    assert round(spc.D2, 3) == 1.128
    pairs = np.random.default_rng(1).standard_normal((2, 200_000))
    assert abs(np.abs(pairs[0] - pairs[1]).mean() - spc.D2) < 0.01


def test_zone_rules_count_one_side_at_a_time() -> None:
    z = np.array([0.5, 2.3, -0.4, 2.1, 0.2, -2.5, 2.2])
    assert spc.zone_rule(z, 2, 3, 2).tolist() == [False, False, False, True, False, False, False]
    assert spc.zone_rule(z, 1, 1, 3).sum() == 0
    assert spc.zone_rule([3.5, 0, -3.2], 1, 1, 3).tolist() == [True, False, True]
    assert spc.zone_rule(z, 2, 3, 2, side=-1).sum() == 0, "only one point beyond -2"
    assert spc.zone_rule(-z, 2, 3, 2, side=-1).tolist() == spc.zone_rule(z, 2, 3, 2, side=1).tolist()
    with pytest.raises(ValueError, match="side"):
        spc.zone_rule(z, 2, 3, 2, side=2)


def test_zone_rules_fire_early_on_a_short_window_and_work_row_by_row() -> None:
    assert spc.zone_rule([2.5, 2.4, 0.0, 0.0], 2, 3, 2).tolist() == [False, True, True, False]
    rows = np.array([[1.5, 1.2, 1.1, 1.3, 0.0], [-1.5, -1.2, -1.1, -1.3, 0.0]])
    assert spc.zone_rule(rows, 4, 5, 1).tolist() == [[False, False, False, True, True]] * 2


def test_average_run_length_of_rule_one_is_about_370() -> None:
    noise = np.random.default_rng(7).standard_normal((1000, 2000))
    expected = 1 / math.erfc(3 / math.sqrt(2))          # 1 / P(|Z| > 3) = 370.4
    assert abs(spc.average_run_length(spc.zone_rule(noise, 1, 1, 3)) - expected) < 40
    assert spc.average_run_length(np.array([[False, True, False], [False, False, False]])) == 5.0
    with pytest.raises(ValueError, match="no series signalled"):
        spc.average_run_length(np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match="2-D"):
        spc.average_run_length(np.zeros(3, bool))


def test_clopper_pearson_matches_the_beta_quantiles() -> None:
    # reference values from scipy.stats.binomtest(k, n).proportion_ci() (SciPy 1.17), kept here so the
    # course package needs no SciPy
    expected = {(5, 45): (0.037076661307191346, 0.24053580849551406),
                (7, 59): (0.04905579064126596, 0.22929254895749254),
                (0, 10): (0.0, 0.30849710781876294), (10, 10): (0.6915028921812371, 1.0),
                (1, 1000): (2.5317487491674634e-05, 0.0055589242798499),
                (300, 1000): (0.27172111212914873, 0.32946167869736503)}
    for (k, n), (low, high) in expected.items():
        got = spc.clopper_pearson(k, n)
        assert got == pytest.approx((low, high), rel=1e-9, abs=1e-12), (k, n)
    narrow, wide = spc.clopper_pearson(5, 45, level=0.9), spc.clopper_pearson(5, 45, level=0.99)
    assert wide[0] < narrow[0] < 5 / 45 < narrow[1] < wide[1]
    with pytest.raises(ValueError, match="0 <= k <= n"):
        spc.clopper_pearson(6, 5)


def test_plot_individuals_draws_limits_and_signals() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    days = np.arange("2026-01-01", "2026-01-11", dtype="datetime64[D]")
    spc.plot_individuals(ax, days, np.arange(10.0), 4.5, 1.0, signals=np.arange(10) > 7, phase_end=days[4], title="t")
    assert len(ax.lines) == 1 + 1 + 6 + 1, "values, centre, six zone lines, phase boundary"
    assert ax.collections[0].get_offsets().shape == (2, 2), "two signals marked"
    plt.close(fig)
