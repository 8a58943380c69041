"""Layer x layer tables of linear, debiased linear and minibatch RBF CKA (full-sample RBF CKA:
:mod:`neurocorr_cka.full_rbf`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from neurocorr_core import Metric, NeurocorrError
from neurocorr_core.stats import check_batch

from .moments import LayerMoments, StreamedMoments
from .rbf import rbf_gram, unbiased_hsic

_PRECISIONS = {"float32": np.float32, "float64": np.float64}


def _check_sizes(name: str, sizes_a: Sequence[int], sizes_b: Sequence[int]) -> None:
    if not sizes_a or not sizes_b or min((*sizes_a, *sizes_b)) < 1:
        raise NeurocorrError(f"{name}: every layer needs at least one neuron; got sizes "
                             f"{list(sizes_a)} and {list(sizes_b)}")


def _check_options(name: str, options: dict[str, Any], known: Sequence[str]) -> None:
    if options:
        raise NeurocorrError(f"{name}: unknown option(s) {sorted(options)}; the options are "
                             f"{', '.join(known)}")


class LinearCka(Metric):
    """Linear CKA for every (layer of A, layer of B) pair, exact, from streaming sums.

    CKA(l, m) = |C_lm|_F^2 / (|C_ll|_F |C_mm|_F) with C the centred co-moment blocks, which
    equals HSIC(XX', YY') / sqrt(HSIC(XX', XX') HSIC(YY', YY')) with linear kernels. Cost
    O(samples * (n_a n_b + sum of squared layer widths)); never an n x n Gram matrix.
    Option ``precision``: ``"float32"`` (default, GEMMs in float32, sums in float64) or
    ``"float64"``. NaN for a layer whose neurons are all constant.
    """

    name: ClassVar[str] = "cka"
    level = "layer"
    _higher: ClassVar[bool] = False

    def __init__(self, sizes_a: Sequence[int], sizes_b: Sequence[int], *,
                 precision: str = "float32", **options: Any) -> None:
        _check_options(self.name, options, ["precision"])
        super().__init__(sizes_a, sizes_b, precision=precision)
        _check_sizes(self.name, self.sizes_a, self.sizes_b)
        if precision not in _PRECISIONS:
            raise NeurocorrError(f"{self.name}: precision must be one of {sorted(_PRECISIONS)}; "
                                 f"got {precision!r}")
        self.moments: LayerMoments | StreamedMoments
        if self._higher or precision == "float64":
            self.moments = LayerMoments(self.sizes_a, self.sizes_b, higher=self._higher,
                                        dtype=_PRECISIONS[precision])
        else:  # the GEMM-floor path: chunked float32 products, float64 sums (docs/performance.md)
            self.moments = StreamedMoments(self.sizes_a, self.sizes_b)

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        check_batch(x, y, sum(self.sizes_a), sum(self.sizes_b), self.name)
        self.moments.update(x, y)

    def merge(self, other: Metric) -> None:
        if type(other) is not type(self) or (other.sizes_a, other.sizes_b) != (self.sizes_a,
                                                                               self.sizes_b):
            raise NeurocorrError(f"{self.name}: can only merge a {self.name} metric built over the "
                                 f"same layer sizes ({list(self.sizes_a)}, {list(self.sizes_b)})")
        assert isinstance(other, LinearCka)
        if type(other.moments) is not type(self.moments):
            raise NeurocorrError(f"{self.name}: can only merge metrics of the same precision; got "
                                 f"{other.options.get('precision')!r} into {self.options.get('precision')!r}")
        self.moments.merge(other.moments)  # type: ignore[arg-type]

    def compute(self) -> np.ndarray:
        if self.count < 2:
            raise NeurocorrError(f"{self.name}: needs at least 2 samples; got {self.count}")
        return self.moments.linear_cka()

    def constant(self) -> tuple[np.ndarray, np.ndarray]:
        return self.moments.constant()

    @property
    def count(self) -> int:
        return self.moments.n


class DebiasedCka(LinearCka):
    """Debiased linear CKA: the unbiased HSIC estimator (Song et al. 2012), as in Nguyen,
    Raghu & Kornblith (2021), on all samples at once, computed in feature space.

    Needs at least 4 samples. NaN where an unbiased self-HSIC is not positive (a constant
    layer, or too few samples for the estimate to be positive). Same options as ``cka``.
    """

    name = "cka-debiased"
    _higher = True
    # an unbiased estimate on few samples is NaN where a self-HSIC is not positive, and may
    # stray beyond [-1, 1]: tell the core's contract check (Metric.bounds, Metric.undefined)
    bounds = (-math.inf, math.inf)
    undefined = "anywhere"

    def compute(self) -> np.ndarray:
        if self.count < 4:
            raise NeurocorrError(f"{self.name}: the unbiased HSIC needs at least 4 samples; "
                                 f"got {self.count}")
        assert isinstance(self.moments, LayerMoments)
        return self.moments.debiased_cka()


class MinibatchRbfCka(Metric):
    """RBF-kernel CKA from the minibatch unbiased HSIC of Nguyen, Raghu & Kornblith (2021).

    The probe is cut, in order, into minibatches of ``batch_size`` samples (default 256,
    whatever batches ``update`` receives); on each, every layer gets an RBF Gram matrix with
    sigma = ``bandwidth`` (default 0.8) times that minibatch's median pairwise distance, and
    HSIC_1 is computed for every layer pair. CKA = mean HSIC_1(K, L) / sqrt(mean HSIC_1(K, K)
    mean HSIC_1(L, L)), means weighted by minibatch size. A final shorter minibatch is used
    if it has at least 4 samples; 1 to 3 left-over samples are not (see ``samples_used``).
    The median is over the pairs i < j of the minibatch. An estimate for probes too large
    for n x n Gram matrices; ``cka-rbf`` is the standard full-sample CKA.
    """

    name = "cka-rbf-minibatch"
    level = "layer"
    bounds = (-math.inf, math.inf)  # a ratio of minibatch unbiased HSICs, like cka-debiased
    undefined = "anywhere"

    def __init__(self, sizes_a: Sequence[int], sizes_b: Sequence[int], *,
                 bandwidth: float = 0.8, batch_size: int = 256, **options: Any) -> None:
        _check_options(self.name, options, ["bandwidth", "batch_size"])
        super().__init__(sizes_a, sizes_b, bandwidth=bandwidth, batch_size=batch_size)
        _check_sizes(self.name, self.sizes_a, self.sizes_b)
        if isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float)) \
                or not math.isfinite(bandwidth) or bandwidth <= 0:
            raise NeurocorrError(f"{self.name}: bandwidth is sigma as a fraction of the median "
                                 f"pairwise distance and must be a positive number; got {bandwidth!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 4:
            raise NeurocorrError(f"{self.name}: batch_size must be an int >= 4 (the unbiased HSIC "
                                 f"needs 4 samples per minibatch); got {batch_size!r}")
        self.bandwidth, self.batch_size = float(bandwidth), batch_size
        self.starts_a = np.cumsum([0, *self.sizes_a])
        self.starts_b = np.cumsum([0, *self.sizes_b])
        self.hsic_ab = np.zeros((len(self.sizes_a), len(self.sizes_b)))
        self.hsic_aa, self.hsic_bb = np.zeros(len(self.sizes_a)), np.zeros(len(self.sizes_b))
        self.samples_used = 0  # in the full minibatches folded in so far
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._n = 0
        self._lo = np.full(self.starts_a[-1] + self.starts_b[-1], np.inf)
        self._hi = np.full(self.starts_a[-1] + self.starts_b[-1], -np.inf)

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        check_batch(x, y, int(self.starts_a[-1]), int(self.starts_b[-1]), self.name)
        # copies: the caller may reuse its buffers while samples wait for a full minibatch
        self._take(np.array(x, np.float64), np.array(y, np.float64))

    def merge(self, other: Metric) -> None:
        if not isinstance(other, MinibatchRbfCka) or (other.sizes_a, other.sizes_b) != (self.sizes_a,
                                                                               self.sizes_b) \
                or (other.bandwidth, other.batch_size) != (self.bandwidth, self.batch_size):
            raise NeurocorrError(f"{self.name}: can only merge a {self.name} metric with the same "
                                 "layer sizes, bandwidth and batch_size")
        if other is self:
            raise NeurocorrError(f"{self.name}: cannot merge a metric into itself")
        self.hsic_ab += other.hsic_ab
        self.hsic_aa += other.hsic_aa
        self.hsic_bb += other.hsic_bb
        self.samples_used += other.samples_used
        self._n += other._n - sum(x.shape[0] for x, _ in other._pending)
        for x, y in other._pending:
            self._take(x, y)
        np.minimum(self._lo, other._lo, out=self._lo)
        np.maximum(self._hi, other._hi, out=self._hi)

    def compute(self) -> np.ndarray:
        sums = [self.hsic_ab.copy(), self.hsic_aa.copy(), self.hsic_bb.copy()]
        used = self.samples_used
        rest = self._pending_arrays()
        if rest is not None and rest[0].shape[0] >= 4:
            for total, add in zip(sums, self._minibatch(*rest), strict=True):
                total += add
            used += rest[0].shape[0]
        if used == 0:
            raise NeurocorrError(f"{self.name}: the unbiased HSIC needs a minibatch of at least 4 "
                                 f"samples; got {self.count}")
        with np.errstate(divide="ignore", invalid="ignore"):
            denominator = np.outer(sums[1], sums[2])
            out = sums[0] / np.sqrt(np.where(denominator > 0, denominator, np.nan))
        dead_a, dead_b = self._dead_layers()
        out[dead_a, :] = np.nan
        out[:, dead_b] = np.nan
        return out

    def constant(self) -> tuple[np.ndarray, np.ndarray]:
        flat = self._lo == self._hi
        return flat[:self.starts_a[-1]], flat[self.starts_a[-1]:]

    @property
    def count(self) -> int:
        return self._n

    # -- internals -----------------------------------------------------------------------
    def _take(self, x: np.ndarray, y: np.ndarray) -> None:
        self._n += x.shape[0]
        both = np.hstack([x, y])
        if both.shape[0]:
            np.minimum(self._lo, both.min(axis=0), out=self._lo)
            np.maximum(self._hi, both.max(axis=0), out=self._hi)
        self._pending.append((x, y))
        pending = self._pending_arrays()
        assert pending is not None
        px, py = pending
        full = px.shape[0] // self.batch_size * self.batch_size
        for i in range(0, full, self.batch_size):
            ab, aa, bb = self._minibatch(px[i:i + self.batch_size], py[i:i + self.batch_size])
            self.hsic_ab += ab
            self.hsic_aa += aa
            self.hsic_bb += bb
            self.samples_used += self.batch_size
        self._pending = [(px[full:], py[full:])] if full < px.shape[0] else []

    def _pending_arrays(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self._pending:
            return None
        return (np.concatenate([x for x, _ in self._pending]),
                np.concatenate([y for _, y in self._pending]))

    def _minibatch(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Size-weighted HSIC_1 sums of one minibatch."""
        grams_a = [rbf_gram(x[:, s:e], self.bandwidth) for s, e in zip(self.starts_a[:-1],
                                                                        self.starts_a[1:], strict=True)]
        grams_b = [rbf_gram(y[:, s:e], self.bandwidth) for s, e in zip(self.starts_b[:-1],
                                                                        self.starts_b[1:], strict=True)]
        ab, aa, bb = unbiased_hsic(grams_a, grams_b)
        size = x.shape[0]
        return size * ab, size * aa, size * bb

    def _dead_layers(self) -> tuple[np.ndarray, np.ndarray]:
        """Layers whose every neuron was constant over all samples seen."""
        dead_a, dead_b = self.constant()
        return (np.logical_and.reduceat(dead_a, self.starts_a[:-1]),
                np.logical_and.reduceat(dead_b, self.starts_b[:-1]))
