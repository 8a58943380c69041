"""Aggregation: the seed paper's network score and the layer x layer table.

With r(i, j) the similarity of neuron i of A and neuron j of B, and d the depth index of
a neuron's layer among the selected layers (0 nearest the input)::

    score(A->B) = mean_i  max_j  |r(i, j)| / (|d(i) - d(j)| + 1)

an undefined r (a constant neuron) counts as 0; ``symmetric`` is the mean of both
directions. ``max`` is whatever matching strategy was chosen; ``depth_penalty="none"``
drops the denominator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import NeurocorrError
from .interfaces import MatchingStrategy

PENALTIES = ("paper", "none")


@dataclass(frozen=True)
class Directional:
    """Per-neuron best matches of one direction and their mean, the network score."""

    score: float
    partner: np.ndarray
    value: np.ndarray


def similarity_scores(sim: np.ndarray, absolute: bool) -> np.ndarray:
    """|r| (or signed r) with undefined values as 0, the paper's convention."""
    s = np.abs(sim) if absolute else sim.copy()
    return np.nan_to_num(s, nan=0.0, copy=False)


def penalise(scores: np.ndarray, depth_a: np.ndarray, depth_b: np.ndarray, penalty: str) -> np.ndarray:
    if penalty == "none":
        return scores
    if penalty != "paper":
        raise NeurocorrError(f"unknown depth penalty {penalty!r}; choose one of {', '.join(PENALTIES)}")
    return scores / (np.abs(depth_a[:, None] - depth_b[None, :]) + 1.0)


def network_score(scores: np.ndarray, matcher: MatchingStrategy) -> tuple[Directional, Directional]:
    """Both directions of the network score from a (penalised) score matrix."""
    return _direction(scores, matcher), _direction(scores.T, matcher)


def _direction(scores: np.ndarray, matcher: MatchingStrategy) -> Directional:
    match = matcher.match(scores)
    return Directional(float(match.score.mean()) if len(match.score) else 0.0,
                       np.asarray(match.partner), np.asarray(match.score))


def layer_table(scores: np.ndarray, sizes_a: Sequence[int], sizes_b: Sequence[int],
                matcher: MatchingStrategy) -> np.ndarray:
    """(layers_a, layers_b): mean best-match score of layer a's neurons within layer b."""
    bounds_a, bounds_b = np.cumsum([0, *sizes_a]), np.cumsum([0, *sizes_b])
    table = np.zeros((len(sizes_a), len(sizes_b)))
    for i in range(len(sizes_a)):
        for j in range(len(sizes_b)):
            block = scores[bounds_a[i]:bounds_a[i + 1], bounds_b[j]:bounds_b[j + 1]]
            table[i, j] = matcher.match(block).score.mean()
    return table


def neuron_depths(sizes: Sequence[int]) -> np.ndarray:
    """Each neuron's layer index, for neurons concatenated layer after layer."""
    return np.repeat(np.arange(len(sizes)), sizes).astype(np.float64)
