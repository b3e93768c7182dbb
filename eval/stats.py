"""Intervals for the summaries and the comparisons (seeded, so a rebuilt report is identical).

* :func:`bootstrap`: the percentile bootstrap of a mean over rows, or over clusters (the samples
  of one prompt are one cluster: resampling rows would count them as independent prompts);
* :func:`wilson`: the Wilson score interval of a single run's rate;
* :func:`paired_difference`: the difference between two arms, paired over prompts (each
  replicate draws one set of prompt indices for both arms) with seeds resampled as a level.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# From this many rows (up to NORMAL_FROM) the resamples are drawn as a count matrix once per
# (n, n_boot, seed) and shared by every metric (all metrics of a summary resample the same rows
# with the same seed), so a summary of 4,000 rows does not redraw 4 million indices per metric.
_SHARED_FROM = 1000


@lru_cache(maxsize=2)
def _counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) float32: how often each row is drawn in each resample (the same draws as
    ``rng.integers(0, n, (n_boot, n))``, the small-n path)."""
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    idx += np.arange(n_boot)[:, None] * n
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float32)


# From this many values on, the interval is the normal one the percentile bootstrap converges to:
# mean ± z·sd/√n (sd of the values as they are, as the bootstrap resamples them), kept within the
# smallest and largest value. From 5,000 values on, the two bounds differ by less than a tenth of
# the interval's half-width, the Monte Carlo noise of 1000 resamples (tests/test_score_cli.py),
# and drawing 1000 resamples of 20,000 rows took 0.8 s, longer than scoring them.
NORMAL_FROM = 5000


def bootstrap(values, n_boot: int = 1000, seed: int = 0, level: float = 0.95, clusters=None) -> dict:
    """``{"value", "low", "high", "n"}``: the mean of ``values`` (bools give a rate) with a
    percentile bootstrap interval (from ``NORMAL_FROM`` values on, its normal limit). One value
    gives a zero-width interval; none gives nulls.

    ``clusters`` (one label per value, e.g. the prompt id): when some label holds several values,
    the clusters are resampled instead of the rows, the value is the mean of the cluster means
    (every prompt weighs the same), and ``clusters`` = their count is added."""
    if clusters is not None:
        pairs = [(c, float(v)) for v, c in zip(values, clusters) if v is not None]
        groups: dict = {}
        for c, v in pairs:
            groups.setdefault(c, []).append(v)
        if len(groups) < len(pairs):
            out = bootstrap([sum(g) / len(g) for g in groups.values()], n_boot, seed, level)
            return {**out, "n": len(pairs), "clusters": len(groups)}
        values = [v for _, v in pairs]
    x = np.asarray([float(v) for v in values if v is not None], dtype=float)
    if x.size == 0:
        return {"value": None, "low": None, "high": None, "n": 0}
    if x.size >= NORMAL_FROM:
        return _normal(x, level)
    if x.size >= _SHARED_FROM:
        means = _counts(x.size, n_boot, seed) @ x.astype(np.float32) / x.size
    else:
        rng = np.random.default_rng(seed)
        means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    a = (1 - level) / 2
    return {"value": round(float(x.mean()), 4), "low": round(float(np.quantile(means, a)), 4),
            "high": round(float(np.quantile(means, 1 - a)), 4), "n": int(x.size)}


def _normal(x: np.ndarray, level: float) -> dict:
    from math import sqrt
    from statistics import NormalDist

    mean, half = float(x.mean()), NormalDist().inv_cdf(0.5 + level / 2) * float(x.std()) / sqrt(x.size)
    lo, hi = max(mean - half, float(x.min())), min(mean + half, float(x.max()))
    return {"value": round(mean, 4), "low": round(lo, 4), "high": round(hi, 4), "n": int(x.size)}


def summary_entry(values, direction, aggregation: str, clusters=None, n_boot: int = 1000, seed: int = 0) -> dict:
    """One metric of a summary: the bootstrap fields, a rate's Wilson interval, and how to read it."""
    entry = bootstrap(values, n_boot, seed, clusters=clusters)
    if aggregation == "rate":
        entry.update(wilson(values))
    return {**entry, "direction": direction, "aggregation": aggregation}


def wilson(values, level: float = 0.95) -> dict:
    """``{"wilson_low", "wilson_high"}``: the Wilson score interval of the rate of ``values``
    (bools; None left out). It treats rows as independent draws; where several rows share a
    prompt the bootstrap's cluster interval is the honest one.

    Written out rather than taken from ``scipy.stats.binomtest(...).proportion_ci("wilson")``,
    which gives the same bounds (tests/test_score_cli.py compares them): importing scipy.stats
    takes about a second, longer than scoring 5,000 texts."""
    from math import sqrt
    from statistics import NormalDist

    x = [bool(v) for v in values if v is not None]
    if not x:
        return {"wilson_low": None, "wilson_high": None}
    n, z = len(x), NormalDist().inv_cdf(0.5 + level / 2)
    p = sum(x) / n
    centre, half = p + z * z / (2 * n), z * sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return {"wilson_low": round(max(0.0, (centre - half) / (1 + z * z / n)), 4),
            "wilson_high": round(min(1.0, (centre + half) / (1 + z * z / n)), 4)}


MIN_PAIRED = 10  # prompts


def paired_difference(a: list[dict], b: list[dict], n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                      paired_seeds: bool = False) -> dict:
    """Mean of arm ``a`` minus mean of arm ``b`` with a paired bootstrap interval.

    ``a`` and ``b`` hold one ``{prompt id: value}`` per seed (one dict for a single run; a value
    is the mean over that prompt's samples). Only prompts that every seed of both arms has are
    used. Each replicate draws one set of prompt indices, applied to every seed of both arms,
    and draws the seeds of each arm with replacement (the same draw for both when
    ``paired_seeds``: seed s of both arms trained on the same subset). Returns ``{"value", "low",
    "high", "prompts", "seeds": [len(a), len(b)], "excludes_zero"}``. ``excludes_zero`` needs at
    least :data:`MIN_PAIRED` prompts: below that the bootstrap's interval is not to be trusted (one
    prompt gives a zero-width one).
    """
    a, b = [s for s in a if s], [s for s in b if s]
    common = set.intersection(*(set(s) for s in a + b)) if a and b else set()
    if not common:
        return {"value": None, "low": None, "high": None, "prompts": 0, "seeds": [len(a), len(b)], "excludes_zero": False}
    ids = sorted(common, key=str)
    A = np.array([[float(s[i]) for i in ids] for s in a])  # (seeds, prompts)
    B = np.array([[float(s[i]) for i in ids] for s in b])
    rng = np.random.default_rng(seed)
    n = len(ids)
    # prompt weights of each replicate: how often each prompt is drawn, over n
    pw = _counts(n, n_boot, int(rng.integers(1 << 31))) / n
    sa = _seed_weights(len(a), n_boot, rng)
    sb = sa if paired_seeds and len(a) == len(b) else _seed_weights(len(b), n_boot, rng)
    diffs = ((sa @ A) * pw).sum(1) - ((sb @ B) * pw).sum(1)
    q = (1 - level) / 2
    low, high = float(np.quantile(diffs, q)), float(np.quantile(diffs, 1 - q))
    return {"value": round(float(A.mean() - B.mean()), 4), "low": round(low, 4), "high": round(high, 4),
            "prompts": n, "seeds": [len(a), len(b)], "excludes_zero": bool(n >= MIN_PAIRED and (low > 0 or high < 0))}


def _seed_weights(k: int, n_boot: int, rng) -> np.ndarray:
    """(n_boot, k): the share of each seed in each replicate's draw of k seeds with replacement."""
    if k == 1:
        return np.ones((n_boot, 1))
    idx = rng.integers(0, k, size=(n_boot, k))
    return np.stack([np.bincount(row, minlength=k) for row in idx]) / k
