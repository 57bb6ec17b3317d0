"""The statistics reports use to say how far a number can be trusted, in one place.

- `wilson`: a 95 % interval for an accuracy measured once on n test items (a single-seed result);
- `bootstrap`: a percentile interval for any statistic of per-item values (auto-mpg's MAE over
  its 78 test cars), resampling the items;
- `mcnemar_exact` and `paired_bootstrap`: two classifiers on the same test items, compared
  on the items themselves (their difference and whether it is more than chance);
- `paired_difference`: the same for two regressors' per-item errors.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

Z95 = 1.959963984540054  # the normal quantile of 0.975


def wilson(accuracy: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion measured on n items (95 % by default). Unlike
    accuracy ± 1.96·se it stays inside [0, 1] and is honest near 100 %."""
    if n <= 0:
        return 0.0, 1.0
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap(values, statistic: Callable[[np.ndarray], np.ndarray] = None, resamples: int = 5000,
              seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of `statistic` (default: the mean) over resamples of the items.
    `values` is (items,) or (items, k); `statistic` maps a (resamples, items[, k]) array to
    (resamples,)."""
    values = np.asarray(values, float)
    if len(values) == 0:
        raise ValueError("the bootstrap needs at least one item")
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, len(values), (resamples, len(values)))]
    stats = draws.mean(1) if statistic is None else statistic(draws)
    tail = (1 - level) / 2
    low, high = np.quantile(stats, [tail, 1 - tail])
    return float(low), float(high)


def mcnemar_exact(a_right, b_right) -> dict:
    """McNemar's exact test on paired right/wrong vectors (the same test items): of the items the
    two classifiers disagree on, how many each got right, and the two-sided binomial p-value of
    a split at least that uneven if both were equally good (p = 1 when they never disagree)."""
    a_right, b_right = np.asarray(a_right, bool), np.asarray(b_right, bool)
    if a_right.shape != b_right.shape:
        raise ValueError("McNemar needs two paired vectors of the same length")
    only_a = int((a_right & ~b_right).sum())
    only_b = int((~a_right & b_right).sum())
    n = only_a + only_b
    low = min(only_a, only_b)
    # exact: Python integers, one division at the end
    tail = sum(math.comb(n, k) for k in range(low + 1))
    p = min(1.0, 2 * tail / 2**n) if n else 1.0
    return {"only_a": only_a, "only_b": only_b, "p": p}


def paired_bootstrap(a_right, b_right, resamples: int = 5000, seed: int = 0,
                     level: float = 0.95) -> dict:
    """Accuracy of a minus accuracy of b, averaged over seeds, with a percentile interval from
    resampling the test items (the same draw for both, so the pairing is kept).

    a_right, b_right: (seeds, items) or (items,) booleans, right or wrong per item."""
    a = np.atleast_2d(np.asarray(a_right, float))
    b = np.atleast_2d(np.asarray(b_right, float))
    if a.shape != b.shape:
        raise ValueError("the paired bootstrap needs two arrays of the same shape")
    per_item = (a - b).mean(0)  # the seed-averaged difference on each item
    low, high = bootstrap(per_item, resamples=resamples, seed=seed, level=level)
    return {"difference": float(per_item.mean()), "low": low, "high": high, "level": level}


def paired_difference(a_errors, b_errors, resamples: int = 5000, seed: int = 0,
                      level: float = 0.95) -> dict:
    """Mean of a's per-item values minus b's (e.g. absolute errors on the same test cars), with
    a paired bootstrap interval; `share` is that difference relative to b's mean."""
    a, b = np.asarray(a_errors, float), np.asarray(b_errors, float)
    if a.shape != b.shape:
        raise ValueError("a paired difference needs two arrays of the same shape")
    both = np.stack([a, b], 1)
    low, high = bootstrap(both, lambda d: d[..., 0].mean(1) - d[..., 1].mean(1),
                          resamples, seed, level)
    ratio_low, ratio_high = bootstrap(both, lambda d: d[..., 0].mean(1) / d[..., 1].mean(1) - 1,
                                      resamples, seed, level)
    return {"difference": float(a.mean() - b.mean()), "low": low, "high": high,
            "share": float(a.mean() / b.mean() - 1), "share_low": ratio_low,
            "share_high": ratio_high, "level": level}


def mean_interval(values, level: float = 0.95, low: float = 0.0, high: float = 1.0) -> tuple[float, float]:
    """Student-t interval for the mean of a few runs (seeds), kept inside [low, high]; a single
    value is its own interval."""
    from scipy import stats as scipy_stats

    values = np.asarray(values, float)
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    half = scipy_stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(max(low, values.mean() - half)), float(min(high, values.mean() + half))


def percent(value: float, digits: int = 2) -> str:
    """A fraction as reports print it: '99.25 %' (one convention everywhere)."""
    return f"{100 * value:.{digits}f} %"


def percent_interval(low: float, high: float, digits: int = 2) -> str:
    """'99.07–99.39 %'"""
    return f"{100 * low:.{digits}f}–{100 * high:.{digits}f} %"
