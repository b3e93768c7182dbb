"""Bootstrap intervals for the summaries (percentile bootstrap over rows, seeded)."""

from __future__ import annotations

import numpy as np


def bootstrap(values, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """``{"value", "low", "high", "n"}``: the mean of ``values`` (bools give a rate) with a
    percentile bootstrap interval. One value gives a zero-width interval; none gives nulls."""
    x = np.asarray([float(v) for v in values if v is not None], dtype=float)
    if x.size == 0:
        return {"value": None, "low": None, "high": None, "n": 0}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    a = (1 - level) / 2
    return {"value": round(float(x.mean()), 4), "low": round(float(np.quantile(means, a)), 4),
            "high": round(float(np.quantile(means, 1 - a)), 4), "n": int(x.size)}
