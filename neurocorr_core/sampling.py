"""Seeded sampling of neurons and probe samples, and the estimate of the network score
with its standard error (docs/significance.md).

Neurons are sampled per layer (a stratified simple random sample without replacement).
For the direction A->B the sampled neurons of A are the rows whose best match is searched
among *all* neurons of B, so the mean of their best matches estimates the full score
without bias, with the stratified estimator::

    estimate = sum_h W_h mean_h,    SE^2 = sum_h W_h^2 (1 - n_h / N_h) s_h^2 / n_h

(``W_h = N_h / N``: layer h's share of the neurons; ``n_h`` of its ``N_h`` neurons
sampled; ``s_h^2`` the sample variance of their best-match scores, ``ddof=1``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import NeurocorrError

Amount = float | int | None


def check_amount(amount: Amount, what: str) -> Amount:
    """``None`` (everything), a fraction in (0, 1] (a float) or a count >= 1 (an int)."""
    if amount is None:
        return None
    if isinstance(amount, bool) or not isinstance(amount, (int, float, np.integer, np.floating)):
        raise NeurocorrError(f"{what} must be a fraction in (0, 1] or a count >= 1, got {amount!r}")
    if isinstance(amount, (int, np.integer)):
        if amount < 1:
            raise NeurocorrError(f"{what} as a count must be at least 1, got {amount}")
        return int(amount)
    if not 0 < amount <= 1:
        raise NeurocorrError(f"{what} as a fraction must lie in (0, 1], got {amount}; "
                             "give a whole number (e.g. 100) for a count")
    return float(amount)


def parse_amount(text: str) -> float | int:
    """``"0.1"`` -> 0.1 (a fraction), ``"100"`` -> 100 (a count); for the command line."""
    try:
        value: float | int = int(text) if text.strip().isdigit() else float(text)
    except ValueError:
        raise NeurocorrError(f"{text!r} is neither a fraction (0.1) nor a count (100)") from None
    checked = check_amount(value, "a sample size")
    assert checked is not None
    return checked


def how_many(total: int, amount: Amount) -> int:
    """How many of ``total`` items ``amount`` asks for. A fraction keeps at least two of a
    layer (when it has two), so each layer's sample variance is defined."""
    if amount is None or total == 0:
        return total
    if isinstance(amount, int):
        return min(amount, total)
    return min(total, max(math.ceil(amount * total), 2))


def sample_neurons(sizes: Sequence[int], amount: Amount, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices into the concatenated neurons of layers ``sizes``: ``amount`` of each
    layer, drawn without replacement."""
    picks, start = [], 0
    for size in sizes:
        k = how_many(size, amount)
        picks.append(start + np.sort(rng.choice(size, k, replace=False)))
        start += size
    return np.concatenate(picks).astype(np.int64) if picks else np.zeros(0, dtype=np.int64)


def sample_indices(total: int, amount: Amount, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``amount`` of ``total`` probe samples, drawn without replacement."""
    k = how_many(total, amount)
    return np.sort(rng.choice(total, k, replace=False)).astype(np.int64)


def sampled_sizes(sizes: Sequence[int], rows: np.ndarray) -> list[int]:
    """Per-layer counts of the sampled ``rows``."""
    bounds = np.cumsum([0, *sizes])
    return [int(n) for n in np.diff(np.searchsorted(rows, bounds))]


@dataclass(frozen=True)
class Estimate:
    """A network-score direction estimated from sampled neurons."""

    value: float
    standard_error: float


def stratified_mean(values: np.ndarray, sizes: Sequence[int], counts: Sequence[int]) -> Estimate:
    """The stratified estimate of the mean over all ``sum(sizes)`` neurons from ``values``
    (the sampled neurons' scores, layer after layer, ``counts[h]`` of layer h)."""
    total = sum(sizes)
    if total == 0:
        return Estimate(0.0, 0.0)
    value, var, start = 0.0, 0.0, 0
    for size, n in zip(sizes, counts, strict=True):
        part = values[start:start + n]
        start += n
        if size == 0:
            continue
        weight = size / total
        value += weight * float(part.mean())
        if n < size and n > 1:
            var += weight ** 2 * (1 - n / size) * float(part.var(ddof=1)) / n
    return Estimate(value, math.sqrt(var))


def rng_for(seed: int, stream: int) -> np.random.Generator:
    """Independent, reproducible streams from one user seed: 0 and 1 sample the neurons of A
    and B, 2 the probe, 3 the permutations, 4 the bootstrap."""
    return np.random.default_rng([int(seed), stream])
