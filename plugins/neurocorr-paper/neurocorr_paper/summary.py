"""Statistics over seeds: mean and sample standard deviation, Spearman rank correlation."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def mean_sd(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1); the sd is NaN for a single value,
    and both are NaN for none. NaN values are left out."""
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan


def ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(1, len(v) + 1)
    for value in np.unique(v):
        tied = v == value
        r[tied] = r[tied].mean()
    return r


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: the Pearson correlation of the ranks; NaN when either side is constant
    or there are fewer than 3 points (a rank correlation of 2 points is always +-1)."""
    if len(x) != len(y):
        raise ValueError(f"spearman needs equal lengths, got {len(x)} and {len(y)}")
    if len(x) < 3:
        return math.nan
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / denom if denom > 0 else math.nan


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sd, min, max and the count of positive / negative values (NaNs counted apart)."""
    finite = [v for v in values if not math.isnan(v)]
    mean, sd = mean_sd(finite)
    return {"mean": mean, "sd": sd, "min": min(finite, default=math.nan),
            "max": max(finite, default=math.nan), "positive": sum(v > 0 for v in finite),
            "negative": sum(v < 0 for v in finite), "undefined": len(values) - len(finite),
            "per_seed": list(values)}


def fmt(mean: float, sd: float, digits: int = 4) -> str:
    """``0.9621 ± 0.0012``; a missing sd is shown as the mean alone, a missing mean as '-'."""
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f}" if math.isnan(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"
