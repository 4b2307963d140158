"""Statistical process control for data-quality metrics (lesson 06): the individuals (X-mR) chart.

A daily metric of a feed (rows landed, a null rate) is one value per day, so it is charted on an
individuals chart: the centre line is the phase-I mean, and sigma is estimated from the average
moving range of consecutive points divided by :data:`D2` (Montgomery, *Introduction to Statistical
Quality Control*, ch. 6; NIST/SEMATECH e-Handbook, section 6.3.2.2). The Western Electric zone rules
(*Statistical Quality Control Handbook*, 1956) look at the standardised values ``z = (x - centre) /
sigma``; :func:`zone_rule` evaluates one of them over arrays of any shape, so that the same code
marks signals on a chart and counts false alarms in thousands of simulated in-control series.
:func:`clopper_pearson` puts an exact confidence interval beside a rate such as the change fail rate,
without SciPy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

D2: float = 2.0 / math.sqrt(math.pi)
"""d2 for moving ranges of two points: the mean range of two independent standard normal values,
E|Z1 - Z2| = 2/sqrt(pi) = 1.128 (to three decimals, as in the published tables)."""


def zone_rule(z: Any, k: int, m: int, limit: float, side: int = 0) -> np.ndarray:
    """Where at least ``k`` of the last ``m`` points lie beyond ``limit`` sigma on the same side.

    ``z`` holds standardised values along its last axis (time). Western Electric rule 1 is
    ``zone_rule(z, 1, 1, 3)``, rule 2 ``zone_rule(z, 2, 3, 2)`` and rule 3 ``zone_rule(z, 4, 5, 1)``.
    ``side`` is ``+1`` to watch only the high side (points above ``+limit``), ``-1`` only the low
    side, ``0`` (the default) both, each counted on its own. The result is ``True`` on the point at
    which the rule fires (the last point of the window). In the first ``m - 1`` points the window is
    shorter, and the rule fires as soon as ``k`` of them are beyond the limit (whatever the missing
    points would have been).
    """
    if side not in (-1, 0, 1):
        raise ValueError(f"side is +1 (high), -1 (low) or 0 (both), not {side!r}")
    z = np.asarray(z, dtype=float)
    fired = np.zeros(z.shape, dtype=bool)
    sides = {1: [z > limit], -1: [z < -limit], 0: [z > limit, z < -limit]}[side]
    for beyond in sides:
        counts = np.cumsum(beyond, axis=-1, dtype=np.int32)
        before = np.zeros_like(counts)
        before[..., m:] = counts[..., :-m]
        fired |= (counts - before) >= k
    return fired


def average_run_length(signals: Any) -> float:
    """The average run length (points until the first signal) of independent series, one per row.

    ``signals`` is a boolean array of shape ``(series, points)``. A series that never signals is
    censored at its length, and the estimate is the points observed (up to and including each first
    signal) divided by the number of series that signalled: the maximum-likelihood mean of a
    geometric run length, close for run rules too when the series are long.
    """
    signals = np.asarray(signals, dtype=bool)
    if signals.ndim != 2:
        raise ValueError(f"signals must be 2-D (series, points), not of shape {signals.shape}")
    hit = signals.any(axis=1)
    if not hit.any():
        raise ValueError("no series signalled: simulate longer series")
    observed = np.where(hit, signals.argmax(axis=1) + 1, signals.shape[1])
    return float(observed.sum() / hit.sum())


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) confidence interval of the proportion ``k / n``.

    The lower bound is the probability ``p`` at which ``k`` or more successes in ``n`` trials have a
    chance of ``(1 - level) / 2``, the upper bound the ``p`` at which ``k`` or fewer have; both are
    found by bisection on the binomial tails (the same numbers as the beta quantiles behind SciPy's
    ``stats.binomtest(k, n).proportion_ci()``). ``k = 0`` gives a lower bound of 0, ``k = n`` an upper
    bound of 1.
    """
    if not (n >= 1 and 0 <= k <= n and 0 < level < 1):
        raise ValueError(f"need 0 <= k <= n, n >= 1 and 0 < level < 1, not k={k}, n={n}, level={level}")
    tail = (1 - level) / 2
    i = np.arange(n + 1)
    log_comb = np.array([math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) for j in range(n + 1)])

    def at_least(m: int, p: float) -> float:  # P(X >= m) for X ~ Binomial(n, p), 0 < p < 1
        return float(np.exp(log_comb[m:] + i[m:] * math.log(p) + (n - i[m:]) * math.log1p(-p)).sum())

    def solve(m: int, target: float) -> float:  # the p with P(X >= m) = target (it rises with p)
        low, high = 0.0, 1.0
        for _ in range(60):
            middle = (low + high) / 2
            low, high = (middle, high) if at_least(m, middle) < target else (low, middle)
        return (low + high) / 2

    lower = solve(k, tail) if k > 0 else 0.0
    upper = solve(k + 1, 1 - tail) if k < n else 1.0  # P(X <= k) = tail, i.e. P(X >= k + 1) = 1 - tail
    return lower, upper


def plot_individuals(ax: Any, x: Sequence[Any], values: Any, center: float, sigma: float, *,
                     signals: Any = None, phase_end: Any = None, title: str = "", ylabel: str = "") -> None:
    """Draw an individuals chart on the matplotlib axes ``ax``.

    ``values`` (numbers aligned with the dates or positions ``x``) as a line with points, the centre
    line, the 1, 2 and 3 sigma lines (the zones of the run rules, 3 sigma being the control limits),
    red circles on ``signals`` (booleans aligned with ``values``) and a vertical line at
    ``phase_end``, the last point of phase I. Dates on ``x`` get concise labels.
    """
    points = np.asarray(values, dtype=float)
    ax.plot(x, points, marker=".", color="#345", linewidth=0.9)
    if np.issubdtype(np.asarray(x).dtype, np.datetime64):
        import matplotlib.dates as mdates

        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    ax.axhline(center, color="#2a2", linewidth=1.2)
    for k, style in ((1, ":"), (2, "--"), (3, "-")):
        for side in (-1, 1):
            ax.axhline(center + side * k * sigma, color="#c44" if k == 3 else "#999", linestyle=style,
                       linewidth=1.0 if k == 3 else 0.8)
    if signals is not None:
        marks = np.asarray(signals, dtype=bool)
        ax.scatter(np.asarray(x)[marks], points[marks], s=70, facecolors="none", edgecolors="#d00", zorder=3,
                   label="signal")
        if marks.any():
            ax.legend(loc="upper left", fontsize=8)
    if phase_end is not None:
        ax.axvline(phase_end, color="#555", linestyle="-.", linewidth=0.9)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
