"""Honest statistics for a handful of models: rank correlations with intervals and p-values.

With five models even Spearman's rho = 0.9 has an exact two-sided p of .083, so every rank
correlation the reproduction reports carries:

- a permutation p-value (:func:`permutation_p`): the pairing of x and y is shuffled; exact
  enumeration of all n! pairings for n <= ``EXACT_MAX`` (8! = 40,320), else Monte Carlo.
  Two-sided as :func:`scipy.stats.permutation_test` defines it: twice the smaller one-sided p,
  at most 1 (a Monte Carlo p counts the observed pairing once, so it is never 0);
- a percentile bootstrap interval over (x, y) pairs (:func:`bootstrap_ci`);
- the pooled within-group test (:func:`pooled_within`): the weighted mean of the per-group
  statistics (per seed, per architecture), with y shuffled only *within* each group, so a
  difference between groups (one seed's models all better) cannot make a correlation. Exact
  by convolving the groups' exact null distributions when every group has n <= ``EXACT_MAX``;
- leave-one-group-out prediction (:func:`logo_error`): a straight line y ~ x fitted on all
  other groups predicts each held-out group; its absolute error is compared with the mean
  baseline's by an exact sign-flip test over the groups (the group, not the model, is the
  independent unit).

Plain numpy; the tests check every number against scipy.stats.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

EXACT_MAX = 8
RESAMPLES = 9999
#: Relative tolerance when comparing a permuted statistic with the observed one (float noise
#: must not decide whether a tie counts; scipy.stats.permutation_test uses the same idea).
TIE_TOL = 1e-12

Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: Values: a list or a 1-d array.
Values = Sequence[float] | np.ndarray


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis of x and y (broadcast); NaN where a side is constant."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    num = np.einsum("...i,...i->...", xc, yc)
    denom = np.sqrt(np.einsum("...i,...i->...", xc, xc) * np.einsum("...i,...i->...", yc, yc))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), np.nan)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho along the last axis of x and y (broadcast): Pearson r of the ranks
    (ties share their average rank)."""
    from scipy.stats import rankdata  # scikit-learn's dependency, so always there

    return _pearson_rows(rankdata(x, axis=-1), rankdata(y, axis=-1))


def kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b along the last axis of x and y (broadcast; ties as scipy's kendalltau):
    sum over pairs of sign(dx) sign(dy) / sqrt((pairs - x-tied pairs)(pairs - y-tied pairs))."""
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    iu = np.triu_indices(x.shape[-1], 1)
    sx = np.sign(x[..., :, None] - x[..., None, :])[..., iu[0], iu[1]]
    sy = np.sign(y[..., :, None] - y[..., None, :])[..., iu[0], iu[1]]
    num = np.einsum("...i,...i->...", sx, sy)
    denom = np.sqrt(np.count_nonzero(sx, axis=-1) * np.count_nonzero(sy, axis=-1).astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), np.nan)


def _chunked(stat: Statistic, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``stat`` over the rows of y (x broadcast), a few thousand rows at a time (Kendall's
    pair signs take n^2 floats per row)."""
    chunk = max(1, 4_000_000 // max(1, y.shape[-1] ** 2))
    return np.concatenate([stat(x if x.ndim == 1 else x[s:s + chunk], y[s:s + chunk])
                           for s in range(0, len(y), chunk)])


STATISTICS: dict[str, Statistic] = {"spearman": spearman_rows, "kendall": kendall_rows}


def _check(x: Values, y: Values) -> tuple[np.ndarray, np.ndarray]:
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"x and y must be 1-d and equally long, got shapes {xa.shape} and {ya.shape}")
    return xa, ya


def correlation(x: Values, y: Values, method: str = "spearman") -> float:
    """Spearman's rho or Kendall's tau-b; NaN for fewer than 3 points or a constant side."""
    xa, ya = _check(x, y)
    if len(xa) < 3:
        return math.nan
    return float(STATISTICS[method](xa, ya))


def _permutations(n: int, rng: np.random.Generator, resamples: int) -> tuple[np.ndarray, bool]:
    """All n! orders (exact) when n <= EXACT_MAX, else ``resamples`` random ones."""
    if n <= EXACT_MAX:
        return np.array(list(itertools.permutations(range(n)))), True
    return np.argsort(rng.random((resamples, n)), axis=1), False


def _two_sided(null: np.ndarray, observed: float, exact: bool) -> float:
    """scipy's two-sided p: 2 * min(P(T <= t), P(T >= t)), at most 1 (Monte Carlo: +1 for the
    observed arrangement in numerator and denominator)."""
    tol = TIE_TOL * max(1.0, abs(observed))
    null = null[~np.isnan(null)]
    add = 0 if exact else 1
    less = (np.count_nonzero(null <= observed + tol) + add) / (len(null) + add)
    greater = (np.count_nonzero(null >= observed - tol) + add) / (len(null) + add)
    return float(min(1.0, 2 * min(less, greater)))


def _null(x: np.ndarray, y: np.ndarray, method: str, rng: np.random.Generator,
          resamples: int) -> tuple[np.ndarray, bool]:
    perms, exact = _permutations(len(x), rng, resamples)
    return _chunked(STATISTICS[method], x, y[perms]), exact


def permutation_p(x: Values, y: Values, method: str = "spearman", *,
                  resamples: int = RESAMPLES, seed: int = 0) -> float:
    """Two-sided permutation p-value of the rank correlation (see the module text)."""
    xa, ya = _check(x, y)
    observed = correlation(xa, ya, method)
    if math.isnan(observed):
        return math.nan
    null, exact = _null(xa, ya, method, np.random.default_rng(seed), resamples)
    return _two_sided(null, observed, exact)


def bootstrap_ci(x: Values, y: Values, method: str = "spearman", *,
                 resamples: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the rank correlation, resampling (x, y) pairs.
    Resamples where a side is constant (undefined correlation) are left out."""
    xa, ya = _check(x, y)
    if len(xa) < 3:
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, len(xa), (resamples, len(xa)))
    values = _chunked(STATISTICS[method], xa[idx], ya[idx])
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan
    alpha = (1 - level) / 2
    return float(np.percentile(values, 100 * alpha)), float(np.percentile(values, 100 * (1 - alpha)))


@dataclass(frozen=True)
class RankTest:
    """One rank correlation with its uncertainty: ``value``, the 95% bootstrap interval
    [``low``, ``high``], the two-sided permutation ``p`` (``exact``: all n! pairings); ``n``: points."""

    method: str
    n: int
    value: float
    low: float
    high: float
    p: float
    exact: bool

    def to_dict(self, prefix: str = "") -> dict[str, Any]:
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}


def rank_test(x: Values, y: Values, method: str = "spearman", *, seed: int = 0,
              resamples: int = RESAMPLES, boot: int = 2000) -> RankTest:
    """Value, 95% bootstrap interval and permutation p of one rank correlation."""
    xa, ya = _check(x, y)
    keep = ~(np.isnan(xa) | np.isnan(ya))
    xa, ya = xa[keep], ya[keep]
    low, high = bootstrap_ci(xa, ya, method, resamples=boot, seed=seed)
    return RankTest(method, len(xa), correlation(xa, ya, method), low, high,
                    permutation_p(xa, ya, method, resamples=resamples, seed=seed), len(xa) <= EXACT_MAX)


@dataclass(frozen=True)
class Pooled:
    """The pooled within-group test: ``value`` the size-weighted mean of the per-group
    correlations, ``p`` its two-sided p under within-group shuffling, ``groups`` how many
    groups had a defined correlation."""

    method: str
    groups: int
    n: int
    value: float
    p: float
    exact: bool


def _group_null_exact(x: np.ndarray, y: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """One group's exact null distribution: distinct values and their probabilities."""
    null, _ = _null(x, y, method, np.random.default_rng(0), 0)
    null = np.nan_to_num(null, nan=0.0)  # an undefined permuted value counts as no correlation
    values, counts = np.unique(np.round(null, 12), return_counts=True)
    return values, counts / counts.sum()


def _convolve(dists: list[tuple[np.ndarray, np.ndarray, float]],
              limit: int = 2_000_000) -> tuple[np.ndarray, np.ndarray] | None:
    """The distribution of sum_g w_g T_g for independent discrete T_g; None when it would
    hold more than ``limit`` support points."""
    values: np.ndarray = np.zeros(1)
    probs: np.ndarray = np.ones(1)
    for v, p, w in dists:
        if len(values) * len(v) > limit:
            return None
        summed = (values[:, None] + w * v[None, :]).ravel()
        joint = (probs[:, None] * p[None, :]).ravel()
        values, inverse = np.unique(np.round(summed, 12), return_inverse=True)
        probs = np.bincount(inverse, weights=joint)
    return values, probs


def pooled_within(x: Values, y: Values, groups: Sequence[Any], method: str = "spearman", *,
                  resamples: int = RESAMPLES, seed: int = 0) -> Pooled:
    """Is there a rank correlation *within* groups (seeds, architectures)? The statistic is
    the mean of the per-group correlations weighted by group size (groups with fewer than 3
    points or a constant side are left out); the null shuffles y within each group."""
    xa, ya = _check(x, y)
    labels = np.asarray(list(groups), dtype=object)
    if len(labels) != len(xa):
        raise ValueError(f"groups must label every point: {len(labels)} labels for {len(xa)} points")
    parts = []
    for g in dict.fromkeys(labels.tolist()):
        m = labels == g
        if m.sum() >= 3 and not math.isnan(correlation(xa[m], ya[m], method)):
            parts.append((xa[m], ya[m]))
    if not parts:
        return Pooled(method, 0, 0, math.nan, math.nan, False)
    n = sum(len(px) for px, _ in parts)
    weights = [len(px) / n for px, _ in parts]
    observed = float(sum(w * correlation(px, py, method) for w, (px, py) in zip(weights, parts, strict=True)))
    if all(len(px) <= EXACT_MAX for px, _ in parts):
        dist = _convolve([(*_group_null_exact(px, py, method), w) for w, (px, py) in zip(weights, parts, strict=True)])
        if dist is not None:
            values, probs = dist
            tol = TIE_TOL * max(1.0, abs(observed)) + 1e-10
            less, greater = probs[values <= observed + tol].sum(), probs[values >= observed - tol].sum()
            return Pooled(method, len(parts), n, observed, float(min(1.0, 2 * min(less, greater))), True)
    rng = np.random.default_rng(seed)
    null = np.zeros(resamples)
    for w, (px, py) in zip(weights, parts, strict=True):
        perms = np.argsort(rng.random((resamples, len(px))), axis=1)
        null += w * np.nan_to_num(_chunked(STATISTICS[method], px, py[perms]), nan=0.0)
    return Pooled(method, len(parts), n, observed, _two_sided(null, observed, exact=False), False)


@dataclass(frozen=True)
class LogoResult:
    """Leave-one-group-out prediction: mean absolute error of the line fitted on the other
    groups (``mae_line``) and of their mean (``mae_mean``), averaged over the held-out groups'
    models; ``p``: exact (2^groups) two-sided sign-flip test of the per-group MAE differences;
    ``wins``: groups where the line's error is smaller."""

    groups: int
    mae_line: float
    mae_mean: float
    p: float
    wins: int


def logo_error(x: Values, y: Values, groups: Sequence[Any], *, resamples: int = RESAMPLES,
               seed: int = 0) -> LogoResult:
    """Leave each group out, fit y = a + b x on the rest (least squares), predict the held-out
    models; the baseline predicts the rest's mean. See :class:`LogoResult`."""
    xa, ya = _check(x, y)
    labels = np.asarray(list(groups), dtype=object)
    names = list(dict.fromkeys(labels.tolist()))
    line, mean = [], []
    for g in names:
        out = labels == g
        xr, yr = xa[~out], ya[~out]
        if len(xr) < 2:
            continue
        b, a = np.polyfit(xr, yr, 1) if np.ptp(xr) > 0 else (0.0, yr.mean())
        line.append(float(np.abs(a + b * xa[out] - ya[out]).mean()))
        mean.append(float(np.abs(yr.mean() - ya[out]).mean()))
    if len(line) < 2:
        return LogoResult(len(line), math.nan, math.nan, math.nan, 0)
    d = np.array(line) - np.array(mean)
    return LogoResult(len(line), float(np.mean(line)), float(np.mean(mean)),
                      sign_flip_p(d, resamples=resamples, seed=seed), int(np.sum(d < 0)))


def sign_flip_p(d: Values, *, resamples: int = RESAMPLES, seed: int = 0) -> float:
    """Two-sided paired test that the mean of ``d`` is 0: every sign pattern (exact up to
    2^16 patterns, else Monte Carlo), as scipy's permutation_test with paired samples."""
    da = np.asarray(d, dtype=np.float64)
    if len(da) <= 16:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(da))))
        exact = True
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), (resamples, len(da)))
        exact = False
    return _two_sided(signs @ da / len(da), float(da.mean()), exact)


@dataclass(frozen=True)
class Wilcoxon:
    """Wilcoxon signed-rank test of paired differences: ``n`` non-zero differences, ``statistic``
    min(W+, W-) (scipy's two-sided statistic), two-sided ``p``; ``exact``: the exact null."""

    n: int
    statistic: float
    p: float
    exact: bool


def wilcoxon(d: Values, *, exact_max: int = 50) -> Wilcoxon:
    """Two-sided Wilcoxon signed-rank test that ``d`` is symmetric about 0, as
    ``scipy.stats.wilcoxon(d)`` (zeros dropped, no continuity correction). For n <= ``exact_max``
    the exact null: all 2^n sign patterns, counted over the (doubled, so integer) mid-ranks, which
    is scipy's exact test without ties and its exact sign-flip permutation test with them; above,
    the normal approximation with the tie correction."""
    from scipy.stats import rankdata

    da = np.asarray(d, dtype=np.float64)
    da = da[da != 0]
    n = len(da)
    if n == 0:
        return Wilcoxon(0, math.nan, math.nan, False)
    ranks = rankdata(np.abs(da))
    stat = float(min(ranks[da > 0].sum(), ranks[da < 0].sum()))
    if n <= exact_max:
        doubled = np.rint(2 * ranks).astype(int)
        counts = np.zeros(int(doubled.sum()) + 1)  # counts[s]: sign patterns whose doubled W+ is s
        counts[0] = 1.0
        for r in doubled:
            counts[r:] = counts[r:] + counts[:-r].copy()
        return Wilcoxon(n, stat, float(min(1.0, 2 * counts[:round(2 * stat) + 1].sum() / 2.0 ** n)), True)
    _, tied = np.unique(np.abs(da), return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24 - float((tied ** 3 - tied).sum()) / 48
    z = (stat - n * (n + 1) / 4) / math.sqrt(var)
    return Wilcoxon(n, stat, float(min(1.0, math.erfc(abs(z) / math.sqrt(2)))), False)


def cluster_bootstrap_ci(d: Values, groups: Sequence[Any], *, resamples: int = 2000, level: float = 0.95,
                         seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``d`` when whole groups are drawn with
    replacement (the group, e.g. an architecture, is the independent unit; the mean is over the
    drawn groups' points). With one point per group it is the plain percentile bootstrap."""
    da = np.asarray(d, dtype=np.float64)
    labels = np.asarray(list(groups), dtype=object)
    names = list(dict.fromkeys(labels.tolist()))
    sums = np.array([da[labels == g].sum() for g in names])
    sizes = np.array([np.count_nonzero(labels == g) for g in names], dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, len(names), (resamples, len(names)))
    means = sums[idx].sum(1) / sizes[idx].sum(1)
    alpha = (1 - level) / 2
    return float(np.percentile(means, 100 * alpha)), float(np.percentile(means, 100 * (1 - alpha)))
