"""The estimators that predict a new model's quality from the reference atlas (docs/atlas.md).

The new model is compared with every reference (symmetric network score s_i); each measured
quality (``accuracy``, ``attacked_accuracy``, ...) is then estimated from the references'
values y_i and the relation between score and quality among the references (their own
pairwise scores S, from the atlas). Two estimators:

``weighted`` (default): a similarity-weighted mean, ``y = sum_i w_i y_i / sum_i w_i`` with
``w_i = exp((s_i - max_k s_k) / tau)``. tau (from :data:`TEMPERATURES`) is chosen by
leave-one-out among the references: each reference in turn is predicted from the others
through S. Small tau trusts the most similar references (nearest neighbour), large tau tends to
the plain mean. Assumes models that behave alike (high score) perform alike.

``linear``: the seed paper's reading, a straight line. The anchor is the reference with the
highest measured value; over the other references, ``y_j = a + b S[j, anchor]`` is fitted by
least squares, and the new model gets ``a + b s_anchor``, clipped to the range of the
references' values (a line is no licence to extrapolate). Assumes quality rises (or falls)
linearly with the score towards the best model.

The interval comes from leave-one-out residuals r_j of the same estimator (the held-out
reference's own tau or line fitted from the others only, so the residuals are honest): half
width = the ceil((n + 1) * level)-th smallest |r_j| (split-conformal style; it covers at the
stated level when the new model is exchangeable with the references). With too few references
for the level, the interval is unbounded (None). The baseline is the mean of the references;
its leave-one-out error is reported beside the estimator's, so a prediction that does not beat
it is visible as such.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurocorr_core import NeurocorrError

ESTIMATORS = ("weighted", "linear")
#: Temperatures the weighted estimator chooses from (score units).
TEMPERATURES = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
#: References (with the measure) a prediction needs at least.
MIN_REFERENCES = 3


@dataclass(frozen=True)
class Fitted:
    """An estimator fitted on references: ``predict(s)`` maps the target's scores with those
    references (in their order) to an estimate; ``params`` says what was chosen."""

    estimator: str
    params: dict[str, Any]
    predict: Callable[[np.ndarray], float]


def weighted_mean(s: np.ndarray, y: np.ndarray, tau: float) -> float:
    """``sum w y / sum w`` with ``w = exp((s - max s) / tau)`` (shifted: no overflow)."""
    w = np.exp((s - np.max(s)) / tau)
    return float(w @ y / w.sum())


def fit_weighted(scores: np.ndarray, y: np.ndarray, names: Sequence[str] | None = None) -> Fitted:
    """Choose tau by leave-one-out over the references (``scores`` (n, n) symmetric, ``y`` (n,));
    a tie goes to the larger tau (the smoother estimate)."""
    n = len(y)
    best_tau, best_err = TEMPERATURES[-1], math.inf
    if n >= 2:
        for tau in TEMPERATURES:
            errs = [abs(y[j] - weighted_mean(np.delete(scores[j], j), np.delete(y, j), tau))
                    for j in range(n)]
            err = float(np.mean(errs))
            if err <= best_err + 1e-15:
                best_tau, best_err = tau, err
    y = np.array(y, dtype=np.float64)
    return Fitted("weighted", {"tau": best_tau}, lambda s: weighted_mean(np.asarray(s), y, best_tau))


def fit_linear(scores: np.ndarray, y: np.ndarray, names: Sequence[str] | None = None) -> Fitted:
    """Least-squares line of quality on the score with the best reference (the anchor), its
    estimates clipped to ``[min y, max y]``."""
    anchor = int(np.argmax(y))
    others = np.array([j for j in range(len(y)) if j != anchor])
    x, t = scores[others, anchor], np.asarray(y, dtype=np.float64)[others]
    if len(others) >= 2 and np.ptp(x) > 0:
        slope, intercept = (float(v) for v in np.polyfit(x, t, 1))
    else:  # no spread in the score: the line is flat at the mean
        slope, intercept = 0.0, float(np.mean(t)) if len(t) else float(y[anchor])
    label = names[anchor] if names is not None else anchor
    low, high = float(np.min(y)), float(np.max(y))
    return Fitted("linear", {"anchor": label, "slope": slope, "intercept": intercept},
                  lambda s: min(high, max(low, intercept + slope * float(np.asarray(s)[anchor]))))


FITTERS: dict[str, Callable[..., Fitted]] = {"weighted": fit_weighted, "linear": fit_linear}


def check_estimator(name: str) -> Callable[..., Fitted]:
    if name not in FITTERS:
        raise NeurocorrError(f"unknown estimator {name!r}; choose one of {', '.join(ESTIMATORS)}")
    return FITTERS[name]


def leave_one_out(scores: np.ndarray, y: np.ndarray, estimator: str) -> np.ndarray:
    """Each reference predicted from the others (the estimator refitted without it): (n,)."""
    fit = check_estimator(estimator)
    n = len(y)
    out = np.empty(n)
    for j in range(n):
        keep = np.array([k for k in range(n) if k != j])
        fitted = fit(scores[np.ix_(keep, keep)], y[keep])
        out[j] = fitted.predict(scores[j, keep])
    return out


def baseline_leave_one_out(y: np.ndarray) -> np.ndarray:
    """The mean of the other references, for each reference: (n,)."""
    n = len(y)
    return (y.sum() - y) / (n - 1)


def half_width(residuals: np.ndarray, level: float) -> float:
    """The ceil((n + 1) * level)-th smallest |residual|; inf when n is too small for ``level``."""
    n = len(residuals)
    rank = math.ceil((n + 1) * level)
    if rank > n:
        return math.inf
    return float(np.sort(np.abs(residuals))[rank - 1])


# -- results ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    """One measure of the new model: the estimate, its interval at ``level`` (None: unbounded),
    the estimator's leave-one-out mean absolute error among the references and the baseline's
    (the mean of the references)."""

    measure: str
    value: float
    low: float | None
    high: float | None
    level: float
    estimator: str
    params: dict[str, Any]
    references: int
    loo_mae: float
    baseline: float
    baseline_mae: float
    nearest: list[tuple[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class LeaveOneOut:
    """Every reference predicted from the others: ``predicted`` by the estimator,
    ``baseline`` by the mean of the others; ``mae`` and ``baseline_mae`` their mean absolute errors."""

    measure: str
    estimator: str
    names: list[str]
    measured: list[float]
    predicted: list[float]
    baseline: list[float]
    mae: float
    baseline_mae: float


def estimate(scores: np.ndarray, y: np.ndarray, s_new: np.ndarray, *, measure: str, names: Sequence[str],
             estimator: str = "weighted", level: float = 0.9) -> Prediction:
    """The :class:`Prediction` of a model with scores ``s_new`` (n,) to references of scores
    ``scores`` (n, n) and values ``y`` (n,)."""
    if not 0 < level < 1:
        raise NeurocorrError(f"the interval level must lie in (0, 1), got {level}")
    fit = check_estimator(estimator)
    if len(y) < MIN_REFERENCES:
        raise NeurocorrError(f"predicting {measure} needs at least {MIN_REFERENCES} references that have it; "
                             f"the atlas has {len(y)}. Add some: neurocorr atlas add MODEL "
                             f"--{measure.replace('_', '-')} ...")
    fitted = fit(scores, y, names)
    value = fitted.predict(s_new)
    loo = leave_one_out(scores, y, estimator)
    width = half_width(y - loo, level)
    order = np.argsort(-s_new)[:3]
    return Prediction(measure, value, None if math.isinf(width) else value - width,
                      None if math.isinf(width) else value + width, level, estimator, fitted.params, len(y),
                      float(np.mean(np.abs(y - loo))), float(np.mean(y)),
                      float(np.mean(np.abs(y - baseline_leave_one_out(y)))),
                      [(names[i], float(s_new[i])) for i in order])
