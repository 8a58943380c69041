"""The ``procrustes`` metric: a streaming, mergeable layer x layer Procrustes similarity.

For a layer X (n x p) of model A and a layer Y (n x q) of model B, centred over the n samples::

    procrustes(X, Y) = ||X^T Y||_* / (||X||_F * ||Y||_F)

``||.||_*`` is the nuclear norm. With both layers scaled to unit Frobenius norm and the
narrower one padded with zero columns, ``max over orthogonal R of trace(R^T X^T Y)`` equals
``||X^T Y||_*`` (the orthogonal Procrustes problem), so the similarity is 1 - d^2 / 2 with d the
smallest distance ``||X R - Y||_F`` between the normalised layers.

Everything needed is in the centred co-moments: ``X^T Y`` is the (p, q) block of the cross
co-moment and ``||X||_F^2`` the sum of the layer's per-neuron centred sums of squares. They
stream over batches and merge across shards exactly, so memory is O(n_a * n_b), independent of
the number of samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from neurocorr_core import Metric, NeurocorrError
from neurocorr_core.stats import CoMoments


def procrustes_similarity(cross: np.ndarray, sumsq_x: float, sumsq_y: float) -> float:
    """The similarity from one layer pair's centred sums: ``cross`` = X^T Y (p, q),
    ``sumsq_x`` = ||X||_F^2, ``sumsq_y`` = ||Y||_F^2. NaN if either layer is constant."""
    if sumsq_x <= 0 or sumsq_y <= 0:
        return float("nan")
    nuclear = float(np.linalg.svd(cross, compute_uv=False).sum())
    # Rounding can push a perfect match a hair above 1; the true value never exceeds it.
    return min(nuclear / np.sqrt(sumsq_x * sumsq_y), 1.0)


class Procrustes(Metric):
    """Orthogonal Procrustes similarity for every (layer of A, layer of B) pair.

    ``compute()`` returns a float64 array (layers_a, layers_b) in [0, 1]; NaN for a pair where
    a layer's neurons are all constant over the probe. Invariant to rotations and reflections
    of either layer's neurons, to isotropic scaling and to shifts; not to other linear maps.
    """

    name = "procrustes"
    level = "layer"

    def __init__(self, sizes_a: Sequence[int], sizes_b: Sequence[int], **options: Any) -> None:
        if options:
            raise NeurocorrError(f"procrustes takes no options; got {sorted(options)}")
        super().__init__(sizes_a, sizes_b)
        if not self.sizes_a or not self.sizes_b or min((*self.sizes_a, *self.sizes_b)) < 1:
            raise NeurocorrError(f"procrustes: every layer needs at least one neuron; got sizes "
                                 f"{list(self.sizes_a)} and {list(self.sizes_b)}")
        self.moments = CoMoments(sum(self.sizes_a), sum(self.sizes_b))

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add one batch: ``x`` (batch, sum(sizes_a)), ``y`` (batch, sum(sizes_b))."""
        if x.ndim != 2 or y.ndim != 2 or x.shape[1] != sum(self.sizes_a) or y.shape[1] != sum(self.sizes_b):
            raise NeurocorrError(f"procrustes: expected batches (n, {sum(self.sizes_a)}) and "
                                 f"(n, {sum(self.sizes_b)}); got {x.shape} and {y.shape}")
        self.moments.update(x, y)

    def merge(self, other: Metric) -> None:
        """Fold in a Procrustes metric over the same layer sizes and other samples."""
        if not isinstance(other, Procrustes) or (other.sizes_a, other.sizes_b) != (self.sizes_a, self.sizes_b):
            raise NeurocorrError("procrustes: can only merge a procrustes metric over the same layer "
                                 f"sizes ({list(self.sizes_a)}, {list(self.sizes_b)})")
        self.moments.merge(other.moments)

    def compute(self) -> np.ndarray:
        """The (layers_a, layers_b) similarity table."""
        if self.count < 2:
            raise NeurocorrError(f"procrustes needs at least 2 samples; got {self.count}")
        bounds_a, bounds_b = np.cumsum([0, *self.sizes_a]), np.cumsum([0, *self.sizes_b])
        var_x, var_y = self.moments.xx, self.moments.yy  # per-neuron centred sums of squares
        out = np.empty((len(self.sizes_a), len(self.sizes_b)))
        for i in range(len(self.sizes_a)):
            rows = slice(bounds_a[i], bounds_a[i + 1])
            for j in range(len(self.sizes_b)):
                cols = slice(bounds_b[j], bounds_b[j + 1])
                out[i, j] = procrustes_similarity(self.moments.xy[rows, cols], float(var_x[rows].sum()),
                                                  float(var_y[cols].sum()))
        return out

    def constant(self) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the neurons that did not vary over the samples seen."""
        return self.moments.xx == 0, self.moments.yy == 0

    @property
    def count(self) -> int:
        return self.moments.n
