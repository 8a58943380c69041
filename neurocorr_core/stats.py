"""Streaming first and second moments of two neuron sets, merged exactly across shards.

Samples are gathered into chunks of ``chunk`` rows (batches are split at chunk boundaries),
each shifted by a float32 centre ``k`` (the mean of the chunk's first batch) as it is copied
into a preallocated float32 buffer, with its float64 sums of ``x - k`` and ``(x - k)^2`` taken
in the same pass. A full chunk costs one float32 GEMM ``(x-k)^T (y-k)`` (run by a
:mod:`~neurocorr_core.backend`) added into a float64 accumulator, and nothing else of size
n_x * n_y: the centring is exact algebra applied later, for many chunks at once
(:meth:`CoMoments._fold`). So large offsets and many samples cost no precision (``E[x^2] -
E[x]^2`` is never formed; rounding: :data:`neurocorr_core.backend.DEPTH`), no (n, m)
temporary is made, and shards cut at chunk boundaries merge to the same numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import backend as backends
from .gather import Gather, chunk_rows

#: Chunks whose centring corrections wait before they are applied (one pass over n_x * n_y).
MAX_PENDING = 64


class CoMoments:
    """n, per-neuron means and centred co-moments ``sum (x - mean_x)(y - mean_y)^T``.

    ``within=False`` keeps only the diagonals of the within-model blocks (enough for
    Pearson); ``within=True`` keeps the full ``xx`` and ``yy`` blocks; ``within=(sizes_x,
    sizes_y)`` keeps only the diagonal blocks of those layers (linear CKA: :attr:`blocks_x`).
    ``backend``: where the products run and the (n, m) accumulators live (a name such as
    ``"numpy"`` or ``"torch:cuda"``; default: :func:`neurocorr_core.backend.resolve`).
    Batches are copied on arrival, so a caller may reuse its buffers. Reading any statistic
    first folds in the samples gathered for the next chunk.
    """

    def __init__(self, n_x: int, n_y: int, *, within: bool | tuple[Sequence[int], Sequence[int]] = False,
                 chunk: int | None = None, backend: str | backends.Backend | None = None) -> None:
        kept = (_slices(within, 0, n_x), _slices(within, 1, n_y))
        if chunk is None:  # the accumulators: the cross block and the kept within-model blocks
            chunk = chunk_rows(n_x, n_y, n_x * n_y + sum((s.stop - s.start) ** 2 for s in kept[0] + kept[1]))
        if int(chunk) < 1:
            raise ValueError(f"chunk must be at least 1 sample, got {chunk}")
        self.n_x, self.n_y = int(n_x), int(n_y)
        self.within = within is not False
        self.chunk = int(chunk)
        self.backend = backends.resolve(backend)
        self._n = 0
        self._mean_x = np.zeros(n_x)
        self._mean_y = np.zeros(n_y)
        # Raw sums of the chunks' shifted products; _groups holds, per chunk (or per block of
        # samples already centred), what its centring correction needs: see _fold.
        self._xy = self.backend.zeros(n_x, n_y)
        self._xx, self._yy = np.zeros(n_x), np.zeros(n_y)  # the diagonals, always
        self._wx = [(s, self._square(s)) for s in kept[0]]
        self._wy = [(s, self._square(s)) for s in kept[1]]
        self._groups: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._sides: tuple[Gather, Gather] | None = None  # made by the first batch
        self._rows = 0  # samples gathered for the next chunk
        # lo == hi exactly for a neuron that took one value over every sample seen
        self._range = [np.full(n, np.inf) for n in (n_x, n_y)] + [np.full(n, -np.inf) for n in (n_x, n_y)]

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add a batch: ``x`` (batch, n_x), ``y`` (batch, n_y), same batch length."""
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"batch lengths differ: {x.shape[0]} vs {y.shape[0]}")
        if x.shape[0] == 0:
            return
        if self._sides is None:
            self._sides = (Gather(self.n_x, self.chunk), Gather(self.n_y, self.chunk))
        for i, (side, a) in enumerate(zip(self._sides, (x, y), strict=True)):
            if a.dtype != np.float32 and not side.raw:
                self._flush()  # the chunk so far is told constant by its float32 rule
                side.raw = True
            if side.raw:  # from then on, every batch's extremes (of any dtype)
                np.minimum(self._range[i], a.min(axis=0), out=self._range[i])
                np.maximum(self._range[i + 2], a.max(axis=0), out=self._range[i + 2])
        done = 0
        while done < x.shape[0]:
            take = min(x.shape[0] - done, self.chunk - self._rows)
            self._sides[0].add(x[done:done + take], self._rows)
            self._sides[1].add(y[done:done + take], self._rows)
            self._rows += take
            done += take
            if self._rows == self.chunk:
                self._flush()

    def merge(self, other: CoMoments) -> None:
        """Fold in moments of other samples (exact: Chan's formula)."""
        self._flush()
        other._flush()
        picks = (np.minimum, np.minimum, np.maximum, np.maximum)
        for mine, theirs, pick in zip(self._range, other._range, picks, strict=True):
            pick(mine, theirs, out=mine)
        if other._n == 0:
            return
        none = np.zeros((max(self.n_x, self.n_y), 0))
        self.backend.add(self._xy, other._xy, none[:self.n_x], none[:self.n_y])
        for (sl, mine), (_, theirs) in zip(self._wx + self._wy, other._wx + other._wy, strict=True):
            self.backend.add(mine, theirs, none[sl], none[sl])
        self._groups += other._groups
        self._combine(other._n, other._mean_x, other._mean_y, other._xx, other._yy)
        if len(self._groups) > MAX_PENDING:
            self._fold()

    def _combine(self, nb: int, mean_x: np.ndarray, mean_y: np.ndarray, ss_x: Any, ss_y: Any) -> None:
        """Running n and means (and the diagonal sums of squares) with ``nb`` more samples."""
        n = self._n + nb
        d_x, d_y = mean_x - self._mean_x, mean_y - self._mean_y
        w = self._n * nb / n
        self._xx += ss_x + w * d_x * d_x
        self._yy += ss_y + w * d_y * d_y
        self._mean_x += d_x * (nb / n)
        self._mean_y += d_y * (nb / n)
        self._n = n

    def _flush(self) -> None:
        """Add the gathered chunk's float32 products into the accumulators; remember the
        chunk's count, means and ``e = mean - k`` for its centring correction (:meth:`_fold`)."""
        nb = self._rows
        if nb == 0 or self._sides is None:
            return
        gx, gy = self._sides
        self._rows = 0
        left, right = gx.buf[:nb], gy.buf[:nb]
        self.backend.add_product(self._xy, left, right)
        for sl, acc in self._wx:
            self.backend.add_product(acc, left[:, sl], left[:, sl])
        for sl, acc in self._wy:
            self.backend.add_product(acc, right[:, sl], right[:, sl])
        e_x, e_y = gx.sum / nb, gy.sum / nb
        self._groups.append((nb, gx.shift + e_x, gy.shift + e_y, e_x, e_y))
        self._combine(nb, gx.shift + e_x, gy.shift + e_y, gx.sumsq - nb * e_x * e_x,
                      gy.sumsq - nb * e_y * e_y)
        for i, side in enumerate((gx, gy)):
            if not side.raw:
                self._chunk_range(i, side)
            side.reset()
        if len(self._groups) > MAX_PENDING:
            self._fold()

    def _fold(self) -> None:
        """Apply the pending centring corrections, in float64, as one update of small rank.

        A group g (a chunk, or samples already centred) holds n_g samples with means m_g
        and shifted products ``S_g = sum (x-k_g)(y-k_g)^T``; with ``e_g = m_g - k_g`` and the
        overall mean m, exact algebra (the law of total covariance) gives
        ``C = sum_g [S_g - n_g e_g f_g^T + n_g (m_g - m)(m'_g - m')^T]``. The accumulator holds
        ``sum_g S_g``; afterwards it holds C, and the groups collapse into one (e = 0).
        """
        self._flush()
        groups = self._groups
        if not groups or (len(groups) == 1 and not groups[0][3].any() and not groups[0][4].any()
                          and groups[0][0] == self._n and np.array_equal(groups[0][1], self._mean_x)
                          and np.array_equal(groups[0][2], self._mean_y)):
            return
        root = np.sqrt([g[0] for g in groups])
        gap_x = np.column_stack([r * (g[1] - self._mean_x) for r, g in zip(root, groups, strict=True)])
        gap_y = np.column_stack([r * (g[2] - self._mean_y) for r, g in zip(root, groups, strict=True)])
        own_x = np.column_stack([r * g[3] for r, g in zip(root, groups, strict=True)])
        own_y = np.column_stack([r * g[4] for r, g in zip(root, groups, strict=True)])
        self.backend.add(self._xy, None, np.hstack([gap_x, own_x]), np.hstack([gap_y, -own_y]))
        for sl, acc in self._wx:
            self.backend.add(acc, None, np.hstack([gap_x, own_x])[sl], np.hstack([gap_x, -own_x])[sl])
        for sl, acc in self._wy:
            self.backend.add(acc, None, np.hstack([gap_y, own_y])[sl], np.hstack([gap_y, -own_y])[sl])
        self._groups = [(self._n, self._mean_x.copy(), self._mean_y.copy(), np.zeros(self.n_x),
                         np.zeros(self.n_y))]

    def _chunk_range(self, i: int, side: Gather) -> None:
        """float32 rows: a neuron is constant over the chunk exactly when every ``x - k`` is
        0 (float subtraction gives 0 only for equal values, and the float64 sum of float32 squares
        is 0 only if all are), and then its one value is ``k``."""
        flat = side.sumsq == 0
        lo, hi = self._range[i], self._range[i + 2]
        np.minimum(lo, side.shift, out=lo, where=flat)
        np.maximum(hi, side.shift, out=hi, where=flat)
        lo[~flat], hi[~flat] = -np.inf, np.inf

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (Dask, deepcopy) without the chunk buffers, accumulators as numpy."""
        self._fold()
        state = dict(self.__dict__)
        raw = (False, False) if self._sides is None else (self._sides[0].raw, self._sides[1].raw)
        state.update(_sides=None, _raw=raw, backend=self.backend.name, _xy=np.array(backends._host(self._xy)))
        for key in ("_wx", "_wy"):
            state[key] = [(sl, np.array(backends._host(acc))) for sl, acc in state[key]]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        raw = state.pop("_raw")
        name = state.pop("backend")
        self.__dict__.update(state)
        self.backend = backends.resolve(name)
        self._xy = self._adopt(state["_xy"])
        self._wx = [(sl, self._adopt(acc)) for sl, acc in state["_wx"]]
        self._wy = [(sl, self._adopt(acc)) for sl, acc in state["_wy"]]
        if any(raw):
            self._sides = (Gather(self.n_x, self.chunk), Gather(self.n_y, self.chunk))
            self._sides[0].raw, self._sides[1].raw = raw

    def _square(self, sl: slice) -> Any:
        return self.backend.zeros(sl.stop - sl.start, sl.stop - sl.start)

    def _adopt(self, array: np.ndarray) -> Any:
        """A numpy accumulator as one of this backend's."""
        acc = self.backend.zeros(*array.shape)
        none = np.zeros((max(array.shape), 0))
        self.backend.add(acc, array, none[:array.shape[0]], none[:array.shape[1]])
        return acc

    def single_chunk(self) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...] | None:
        """Every sample seen, when they are still one gathered chunk (no product run, nothing
        merged, float32 batches): per side ``(x - k, e, ss)``, the float32 (rows, n) buffer,
        ``e = mean - k`` and the float64 sums of squares of ``x - k`` (0 exactly for a constant
        neuron), so that ``C_xy = (x-k)^T (y-k) - rows e_x e_y^T``. Views, not to be written,
        valid until the next update; else None. Norms of C need no (n, m) accumulator then."""
        rows, sides = self._rows, self._sides
        if self._n or not rows or sides is None or sides[0].raw or sides[1].raw:
            return None
        return tuple((s.buf[:rows], s.sum / rows, s.sumsq) for s in sides)

    @property
    def n(self) -> int:
        self._flush()
        return self._n

    @property
    def mean_x(self) -> np.ndarray:
        self._flush()
        return self._mean_x

    @property
    def mean_y(self) -> np.ndarray:
        self._flush()
        return self._mean_y

    @property
    def xy(self) -> np.ndarray:
        """Centred cross co-moments (n_x, n_y), float64."""
        self._fold()
        return self.backend.to_numpy(self._xy)

    @property
    def xx(self) -> np.ndarray:
        """Centred co-moments of x: (n_x, n_x) with ``within=True``, else the diagonal (n_x,)."""
        return self.blocks_x[0] if self.within and len(self._wx) == 1 and self.n_x else self._diagonal(0)

    @property
    def yy(self) -> np.ndarray:
        return self.blocks_y[0] if self.within and len(self._wy) == 1 and self.n_y else self._diagonal(1)

    def _diagonal(self, side: int) -> np.ndarray:
        self._flush()
        return self._xx if side == 0 else self._yy

    @property
    def blocks_x(self) -> list[np.ndarray]:
        """The kept within-model blocks of x (one per layer given as ``within``), float64."""
        self._fold()
        return [self.backend.to_numpy(acc) for _, acc in self._wx]

    @property
    def blocks_y(self) -> list[np.ndarray]:
        self._fold()
        return [self.backend.to_numpy(acc) for _, acc in self._wy]

    @property
    def constant_x(self) -> np.ndarray:
        """Neurons of x that took one value over every sample seen (dead)."""
        self._flush()
        return self._range[0] == self._range[2]

    @property
    def constant_y(self) -> np.ndarray:
        self._flush()
        return self._range[1] == self._range[3]

    @property
    def var_x(self) -> np.ndarray:
        """Per-neuron sum of squared deviations of x (not divided by n); exactly 0 when constant."""
        var = self._diagonal(0).copy()
        var[self.constant_x] = 0.0
        return var

    @property
    def var_y(self) -> np.ndarray:
        var = self._diagonal(1).copy()
        var[self.constant_y] = 0.0
        return var

    def correlation(self) -> np.ndarray:
        """Pearson r for every (x, y) neuron pair, a new float64 (n_x, n_y) array; NaN where
        either neuron is constant. One pass over the accumulator, no other (n, m) temporary."""
        self._fold()
        r = self.backend.scaled(self._xy, _inverse_sqrt(self.var_x), _inverse_sqrt(self.var_y))
        return np.clip(r, -1.0, 1.0, out=r)  # NaN stays NaN


def _slices(within: bool | tuple[Sequence[int], Sequence[int]], side: int, n: int) -> list[slice]:
    """The within-model blocks to keep on one side: none, all neurons, or one per layer."""
    if within is False:
        return []
    if within is True:
        return [slice(0, n)]
    sizes = [int(s) for s in within[side]]
    if sum(sizes) != n or min(sizes, default=1) < 1:
        raise ValueError(f"within: layer sizes {sizes} must be positive and add up to {n} neurons")
    edges = np.cumsum([0, *sizes])
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _inverse_sqrt(var: np.ndarray) -> np.ndarray:
    """1 / sqrt(var), NaN where var is 0 (a constant neuron), so its whole row is NaN."""
    out = np.full(var.shape, np.nan)
    np.divide(1.0, np.sqrt(np.maximum(var, 0.0)), out=out, where=var > 0)
    return out


def check_batch(x: np.ndarray, y: np.ndarray, n_x: int, n_y: int, metric: str) -> None:
    """Raise :class:`~neurocorr_core.NeurocorrError` unless ``x`` (batch, n_x) and ``y``
    (batch, n_y) are a valid batch for ``metric``: 2-D, the expected neuron counts, the same
    number of samples, and only finite numbers (a NaN would silently poison every sum)."""
    from .errors import NeurocorrError  # local: stats stays importable on its own

    for side, a, want in (("A", x, n_x), ("B", y, n_y)):
        if not isinstance(a, np.ndarray) or a.ndim != 2:
            shape = getattr(a, "shape", type(a).__name__)
            raise NeurocorrError(f"{metric}: the batch of model {side} must be a 2-D array "
                                 f"(samples, neurons); got {shape}")
        if a.shape[1] != want:
            raise NeurocorrError(f"{metric}: the batch of model {side} has {a.shape[1]} neurons "
                                 f"but the metric was built for {want} (the sum of its layer "
                                 "sizes); build the metric with the same layers you feed it")
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise NeurocorrError(f"{metric}: the batch of model {side} has dtype {a.dtype}; "
                                 "give real numbers (float32 or float64)")
    if x.shape[0] != y.shape[0]:
        raise NeurocorrError(f"{metric}: the batches of A and B hold different numbers of samples "
                             f"({x.shape[0]} vs {y.shape[0]}); feed both models the same probe batch")
    for side, a in (("A", x), ("B", y)):
        # one sum tells a finite batch (NaN/Inf propagate) without a boolean temporary; only a
        # sum that overflowed or a bad batch takes the exact look
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a.sum()) and not np.isfinite(a).all():
            cols = np.flatnonzero(~np.isfinite(a).all(axis=0))
            raise NeurocorrError(f"{metric}: the batch of model {side} holds NaN/Inf in neuron(s) "
                                 f"{cols[:10].tolist()}{' ...' if cols.size > 10 else ''}; "
                                 "fix the model or the probe, or leave those layers out")
