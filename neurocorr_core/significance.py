"""Is a network score more than chance? A permutation null and a bootstrap interval.

Both work on the neuron activations of the whole probe, kept in memory by
:func:`neurocorr_core.compare` (``samples x (n_a + n_b)`` float32), and recompute the
score from scratch for every replicate, so they hold for every metric and matching:

- permutation null: B's rows (its probe order) shuffled, which breaks the pairing of
  samples between the two models and nothing else; ``z`` and the one-sided permutation
  p-value ``(1 + #{null >= observed}) / (permutations + 1)`` (never 0: the observed order
  counts as one of the orders).
- bootstrap: probe samples drawn with replacement (the same draw for both models); the
  percentile interval of the replicate scores at ``confidence``, the basic interval, the
  replicates' standard deviation and their bias (mean replicate minus the observed score).

Both are seeded (:func:`neurocorr_core.sampling.rng_for`) and reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import NeurocorrError
from .result import Significance
from .sampling import rng_for

ScoreFn = Callable[[np.ndarray, np.ndarray], float]


def check_significance_options(permutations: int, bootstrap: int, confidence: float) -> None:
    """compare()'s significance options: the permutation and bootstrap counts (0, or at least 2)
    and the confidence level of the interval, in (0, 1)."""
    for name, value in (("permutations", permutations), ("bootstrap", bootstrap)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise NeurocorrError(f"{name} must be a whole number >= 0, got {value!r}")
        if value == 1:
            raise NeurocorrError(f"{name}=1 gives no spread; use 0 (off) or at least 2 (the smallest "
                                 "p-value is 1/(permutations+1): 99 or more for p < 0.01)")
    if not 0 < confidence < 1:
        raise NeurocorrError(f"confidence must lie in (0, 1), e.g. 0.95; got {confidence!r}")


def permutation_null(score: ScoreFn, x: np.ndarray, y: np.ndarray, permutations: int,
                     seed: int) -> np.ndarray:
    """Scores with B's samples in ``permutations`` seeded random orders; (permutations,)."""
    rng = rng_for(seed, 3)
    return np.array([score(x, y[rng.permutation(len(y))]) for _ in range(permutations)])


def bootstrap_scores(score: ScoreFn, x: np.ndarray, y: np.ndarray, replicates: int,
                     seed: int) -> np.ndarray:
    """Scores on ``replicates`` seeded resamples (with replacement) of the probe samples."""
    rng = rng_for(seed, 4)
    out = []
    for _ in range(replicates):
        idx = rng.integers(0, len(x), len(x))
        out.append(score(x[idx], y[idx]))
    return np.array(out)


def assess(observed: float, score: ScoreFn, x: np.ndarray, y: np.ndarray, *, permutations: int,
           bootstrap: int, confidence: float, seed: int) -> Significance:
    """The permutation test and bootstrap interval of ``observed`` = ``score(x, y)``."""
    fields: dict[str, object] = {}
    if permutations:
        null = permutation_null(score, x, y, permutations, seed)
        mean, std = float(null.mean()), float(null.std(ddof=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = float(np.divide(observed - mean, std))
        fields.update(null_mean=mean, null_std=std, z=z,
                      p_value=float((1 + np.sum(null >= observed)) / (permutations + 1)))
    if bootstrap:
        reps = bootstrap_scores(score, x, y, bootstrap, seed)
        tail = (1 - confidence) / 2
        low, high = (float(q) for q in np.quantile(reps, [tail, 1 - tail]))
        fields.update(ci=(low, high), ci_basic=(2 * observed - high, 2 * observed - low),
                      bootstrap_std=float(reps.std(ddof=1)), bootstrap_bias=float(reps.mean() - observed))
    return Significance(seed=seed, permutations=permutations, bootstrap=bootstrap,
                        confidence=confidence, **fields)  # type: ignore[arg-type]
