"""Bootstrap intervals for the summaries (percentile bootstrap over rows, seeded)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# Above this many rows the resamples are drawn as a count matrix once per (n, n_boot, seed) and
# shared by every metric (all metrics of a summary resample the same rows with the same seed),
# so `eval score` on 20,000 generations does not redraw 20 million indices per metric.
_SHARED_FROM = 1000


@lru_cache(maxsize=2)
def _counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) float32: how often each row is drawn in each resample (the same draws as
    ``rng.integers(0, n, (n_boot, n))``, the small-n path)."""
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    idx += np.arange(n_boot)[:, None] * n
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float32)


def bootstrap(values, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """``{"value", "low", "high", "n"}``: the mean of ``values`` (bools give a rate) with a
    percentile bootstrap interval. One value gives a zero-width interval; none gives nulls."""
    x = np.asarray([float(v) for v in values if v is not None], dtype=float)
    if x.size == 0:
        return {"value": None, "low": None, "high": None, "n": 0}
    if x.size >= _SHARED_FROM:
        means = _counts(x.size, n_boot, seed) @ x.astype(np.float32) / x.size
    else:
        rng = np.random.default_rng(seed)
        means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    a = (1 - level) / 2
    return {"value": round(float(x.mean()), 4), "low": round(float(np.quantile(means, a)), 4),
            "high": round(float(np.quantile(means, 1 - a)), 4), "n": int(x.size)}
