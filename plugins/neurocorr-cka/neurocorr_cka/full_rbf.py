"""RBF CKA on all samples at once, as Kornblith et al. (2019) compute it: ``cka-rbf``
(the standard, biased HSIC) and ``cka-rbf-debiased`` (the unbiased HSIC_1)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from neurocorr_core import Metric, NeurocorrError
from neurocorr_core.stats import check_batch

from .rbf import centred_gram, rbf_gram_full

#: The n x n float64 Gram matrices held at once (one per layer of B, two more) may not pass
#: this many bytes: beyond it the full-sample estimator is the wrong tool (cka-rbf-minibatch).
GRAM_LIMIT_BYTES = 16 << 30


class RbfCka(Metric):
    """Standard RBF-kernel CKA of Kornblith et al. (2019), on every sample at once.

    For each layer, K_ij = exp(-|x_i - x_j|^2 / (2 sigma^2)) with sigma^2 = ``bandwidth``^2
    times the median of the squared distances over the whole n x n matrix (as their code
    does); CKA = <HKH, HLH> / (|HKH|_F |HLH|_F), H = I - 11'/n. The activations are kept
    (float32 stays float32) and the n x n Gram matrices are formed at :meth:`compute`: memory
    O(n^2 (L_b + 2)) then. Option ``bandwidth`` (default 0.5, the fraction of the median
    distance). NaN for a layer whose samples are all the same.
    """

    name: ClassVar[str] = "cka-rbf"
    level = "layer"
    _unbiased: ClassVar[bool] = False
    _fewest: ClassVar[int] = 2

    def __init__(self, sizes_a: Sequence[int], sizes_b: Sequence[int], *,
                 bandwidth: float = 0.5, **options: Any) -> None:
        if options:
            hint = " (batch_size belongs to cka-rbf-minibatch)" if "batch_size" in options else ""
            raise NeurocorrError(f"{self.name}: unknown option(s) {sorted(options)}; the only "
                                 f"option is bandwidth{hint}")
        super().__init__(sizes_a, sizes_b, bandwidth=bandwidth)
        if not self.sizes_a or not self.sizes_b or min((*self.sizes_a, *self.sizes_b)) < 1:
            raise NeurocorrError(f"{self.name}: every layer needs at least one neuron; got sizes "
                                 f"{list(self.sizes_a)} and {list(self.sizes_b)}")
        if isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float)) \
                or not math.isfinite(bandwidth) or bandwidth <= 0:
            raise NeurocorrError(f"{self.name}: bandwidth is sigma as a fraction of the median "
                                 f"distance and must be a positive number; got {bandwidth!r}")
        self.bandwidth = float(bandwidth)
        self.starts_a = np.cumsum([0, *self.sizes_a])
        self.starts_b = np.cumsum([0, *self.sizes_b])
        self._rows: list[tuple[np.ndarray, np.ndarray]] = []
        self._n = 0

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        check_batch(x, y, int(self.starts_a[-1]), int(self.starts_b[-1]), self.name)
        if x.shape[0]:  # copies: the caller may reuse its buffers
            self._rows.append((_kept(x), _kept(y)))
            self._n += x.shape[0]

    def merge(self, other: Metric) -> None:
        if type(other) is not type(self) or (other.sizes_a, other.sizes_b) != (self.sizes_a,
                                                                               self.sizes_b) \
                or other.bandwidth != self.bandwidth:
            raise NeurocorrError(f"{self.name}: can only merge a {self.name} metric with the same "
                                 "layer sizes and bandwidth")
        if other is self:
            raise NeurocorrError(f"{self.name}: cannot merge a metric into itself")
        # CKA is invariant to reordering the samples, so the order of shards does not matter
        self._rows += other._rows
        self._n += other._n

    def compute(self) -> np.ndarray:
        n = self._n
        if n < self._fewest:
            raise NeurocorrError(f"{self.name}: needs at least {self._fewest} samples; got {n}")
        need = 8 * n * n * (len(self.sizes_b) + 2)
        if need > GRAM_LIMIT_BYTES:
            raise NeurocorrError(f"{self.name}: {n} samples need {need / 2**30:.1f} GiB of n x n "
                                 "Gram matrices; use fewer probe samples, or the minibatch "
                                 "estimator cka-rbf-minibatch")
        x, y = self._arrays()
        grams_b = [self._centred(y[:, s:e]) for s, e in zip(self.starts_b[:-1], self.starts_b[1:],
                                                             strict=True)]
        norms_b = np.array([math.sqrt(_dot(g, g)) for g in grams_b])
        out = np.empty((len(self.sizes_a), len(self.sizes_b)))
        for i, (s, e) in enumerate(zip(self.starts_a[:-1], self.starts_a[1:], strict=True)):
            k = self._centred(x[:, s:e])
            norm_k = math.sqrt(_dot(k, k))
            for j, g in enumerate(grams_b):
                out[i, j] = _dot(k, g) / (norm_k * norms_b[j]) if norm_k * norms_b[j] > 0 else np.nan
        return out

    def constant(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._n:
            return np.zeros(int(self.starts_a[-1]), bool), np.zeros(int(self.starts_b[-1]), bool)
        x, y = self._arrays()
        return (x == x[0]).all(axis=0), (y == y[0]).all(axis=0)

    @property
    def count(self) -> int:
        return self._n

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if len(self._rows) > 1:  # join once, so later calls reuse the joined arrays
            self._rows = [(np.concatenate([x for x, _ in self._rows]),
                           np.concatenate([y for _, y in self._rows]))]
        return self._rows[0]

    def _centred(self, layer: np.ndarray) -> np.ndarray:
        return centred_gram(rbf_gram_full(layer, self.bandwidth), self._unbiased)


class DebiasedRbfCka(RbfCka):
    """Debiased RBF CKA: the unbiased HSIC_1 of Song et al. (2012) in place of HSIC, with
    Kornblith et al.'s kernels on all samples (their ``cka(..., debiased=True)``, as in
    Nguyen, Raghu & Kornblith 2021 but on the whole probe, not per minibatch). Needs 4
    samples; may be negative or NaN on few samples."""

    name = "cka-rbf-debiased"
    _unbiased = True
    _fewest = 4
    bounds = (-math.inf, math.inf)  # the unbiased estimate may stray beyond [-1, 1]
    undefined = "anywhere"


def _kept(a: np.ndarray) -> np.ndarray:
    """A copy in float32 or float64, whichever loses nothing."""
    return np.array(a, dtype=np.result_type(a.dtype, np.float32))


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """<a, b> (Frobenius) without an (n, n) temporary."""
    return float(np.dot(a.ravel(), b.ravel()))
