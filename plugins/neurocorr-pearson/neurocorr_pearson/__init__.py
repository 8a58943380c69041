"""Pearson correlation between every pair of neurons, streamed over the probe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from neurocorr_core import Metric, hookimpl
from neurocorr_core.stats import CoMoments


class Pearson(Metric):
    """r(i, j) for every neuron i of A and j of B; NaN where a neuron is constant.

    Memory is O(n_a * n_b), independent of the number of probe samples.
    """

    name = "pearson"
    level = "neuron"

    def __init__(self, sizes_a: Sequence[int], sizes_b: Sequence[int], **options: Any) -> None:
        super().__init__(sizes_a, sizes_b, **options)
        self.moments = CoMoments(sum(self.sizes_a), sum(self.sizes_b))

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        self.moments.update(x, y)

    def merge(self, other: Metric) -> None:
        if not isinstance(other, Pearson) or (other.sizes_a, other.sizes_b) != (self.sizes_a, self.sizes_b):
            raise TypeError("can only merge a Pearson metric over the same layers")
        self.moments.merge(other.moments)

    def compute(self) -> np.ndarray:
        return self.moments.correlation()

    def constant(self) -> tuple[np.ndarray, np.ndarray]:
        return self.moments.var_x == 0, self.moments.var_y == 0

    @property
    def count(self) -> int:
        return self.moments.n


@hookimpl
def neurocorr_similarity_metrics() -> list[type[Metric]]:
    return [Pearson]
