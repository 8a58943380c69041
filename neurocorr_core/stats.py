"""Streaming first and second moments of two neuron sets, merged exactly across shards.

Batches are gathered into chunks of at least ``chunk`` samples; each chunk is centred on its
own mean, multiplied in float32 (one GEMM, the expensive part) and its products are added to
float64 accumulators. Chunks and shards are combined with Chan et al.'s pairwise update, so
neither large offsets nor many samples cost precision: ``E[x^2] - E[x]^2`` is never formed.
"""

from __future__ import annotations

import numpy as np

#: Samples gathered before one GEMM: large enough that the float64 accumulation (one pass
#: over n_x * n_y) is small beside the GEMM (2 * chunk * n_x * n_y flops).
CHUNK = 4096


class CoMoments:
    """n, per-neuron means and centred co-moments ``sum (x - mean_x)(y - mean_y)^T``.

    ``within=False`` keeps only the diagonals of the within-model blocks (enough for
    Pearson); ``within=True`` keeps the full ``xx`` and ``yy`` blocks (needed by linear CKA).
    Reading any statistic first folds in the samples still gathered for the next chunk.
    """

    def __init__(self, n_x: int, n_y: int, *, within: bool = False, chunk: int = CHUNK) -> None:
        self.within = within
        self.chunk = chunk
        self._n = 0
        self._mean_x = np.zeros(n_x)
        self._mean_y = np.zeros(n_y)
        self._xy = np.zeros((n_x, n_y))
        self._xx = np.zeros((n_x, n_x)) if within else np.zeros(n_x)
        self._yy = np.zeros((n_y, n_y)) if within else np.zeros(n_y)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_rows = 0
        # Running extremes decide "constant" exactly; a float64 sum of a repeated value need not.
        self._range = [np.full(n, np.inf) for n in (n_x, n_y)] + [np.full(n, -np.inf) for n in (n_x, n_y)]

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add a batch: ``x`` (batch, n_x), ``y`` (batch, n_y), same batch length."""
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"batch lengths differ: {x.shape[0]} vs {y.shape[0]}")
        if x.shape[0] == 0:
            return
        self._pending.append((x, y))
        self._pending_rows += x.shape[0]
        lo_x, lo_y, hi_x, hi_y = self._range
        np.minimum(lo_x, x.min(axis=0), out=lo_x)
        np.minimum(lo_y, y.min(axis=0), out=lo_y)
        np.maximum(hi_x, x.max(axis=0), out=hi_x)
        np.maximum(hi_y, y.max(axis=0), out=hi_y)
        if self._pending_rows >= self.chunk:
            self._flush()

    def merge(self, other: CoMoments) -> None:
        """Fold in moments of other samples (Chan's formula)."""
        self._flush()
        other._flush()
        if other._n == 0:
            return
        n = self._n + other._n
        w = self._n * other._n / n
        dx = other._mean_x - self._mean_x
        dy = other._mean_y - self._mean_y
        self._xy += other._xy + w * np.outer(dx, dy)
        self._xx += other._xx + w * (np.outer(dx, dx) if self.within else dx * dx)
        self._yy += other._yy + w * (np.outer(dy, dy) if self.within else dy * dy)
        self._mean_x += dx * (other._n / n)
        self._mean_y += dy * (other._n / n)
        self._n = n
        for mine, theirs, pick in zip(self._range, other._range, (np.minimum, np.minimum, np.maximum, np.maximum),
                                      strict=True):
            pick(mine, theirs, out=mine)

    def _flush(self) -> None:
        if not self._pending:
            return
        xs, ys = zip(*self._pending, strict=True)
        self._pending, self._pending_rows = [], 0
        self._add_chunk(np.concatenate(xs) if len(xs) > 1 else xs[0],
                        np.concatenate(ys) if len(ys) > 1 else ys[0])

    def _add_chunk(self, x: np.ndarray, y: np.ndarray) -> None:
        """Chan's merge of one chunk: ``C += C_chunk + w d_x d_y^T``.

        The chunk is centred on shifts ``k`` (its float32-rounded mean, so float32 data are
        subtracted exactly); with ``e = mean - k``, ``C_chunk = (x-k)^T (y-k) - nb e_x e_y^T``,
        whose small outer product rides along as one extra row of the float32 GEMM. The merge
        term ``w d d^T`` (``d``: gap to the running mean) is added in float64, in place, so a
        run split into shards at chunk boundaries merges to the same numbers.
        """
        nb = x.shape[0]
        n = self._n + nb
        w = self._n * nb / n
        mean_x, left, e_x = _shifted(x, 1)
        mean_y, right, e_y = _shifted(y, 1)
        d_x, d_y = mean_x - self._mean_x, mean_y - self._mean_y
        left[nb], right[nb] = np.sqrt(nb) * e_x, -np.sqrt(nb) * e_y
        self._xy += left.T @ right
        _rank_one(self._xy, w, d_x, d_y)
        if self.within:
            self._xx += left.T @ left - 2 * nb * np.outer(e_x, e_x)
            self._yy += right.T @ right - 2 * nb * np.outer(e_y, e_y)
            _rank_one(self._xx, w, d_x, d_x)
            _rank_one(self._yy, w, d_y, d_y)
        else:
            self._xx += _sumsq(left[:nb]) - nb * e_x * e_x + w * d_x * d_x
            self._yy += _sumsq(right[:nb]) - nb * e_y * e_y + w * d_y * d_y
        self._mean_x += d_x * (nb / n)
        self._mean_y += d_y * (nb / n)
        self._n = n

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
        self._flush()
        return self._xy

    @property
    def xx(self) -> np.ndarray:
        """Centred co-moments of x: (n_x, n_x) with ``within``, else the diagonal (n_x,)."""
        self._flush()
        return self._xx

    @property
    def yy(self) -> np.ndarray:
        self._flush()
        return self._yy

    @property
    def constant_x(self) -> np.ndarray:
        """Neurons of x that took one value over every sample seen (dead)."""
        return self._range[0] == self._range[2]

    @property
    def constant_y(self) -> np.ndarray:
        return self._range[1] == self._range[3]

    @property
    def var_x(self) -> np.ndarray:
        """Per-neuron sum of squared deviations of x (not divided by n); exactly 0 when constant."""
        var = np.diagonal(self.xx).copy() if self.within else self.xx.copy()
        var[self.constant_x] = 0.0
        return var

    @property
    def var_y(self) -> np.ndarray:
        var = np.diagonal(self.yy).copy() if self.within else self.yy.copy()
        var[self.constant_y] = 0.0
        return var

    def correlation(self) -> np.ndarray:
        """Pearson r for every (x, y) neuron pair; NaN where either neuron is constant."""
        var_x, var_y = self.var_x, self.var_y
        with np.errstate(divide="ignore", invalid="ignore"):
            r = self.xy / np.outer(np.sqrt(var_x), np.sqrt(var_y))
        r[var_x == 0, :] = np.nan
        r[:, var_y == 0] = np.nan
        return np.clip(r, -1.0, 1.0, out=r)


def _shifted(a: np.ndarray, extra: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The chunk mean (float64); the chunk minus a shift ``k`` as float32 with ``extra`` spare
    rows; and ``mean - k``. float32 data are shifted by their float32-rounded mean, so the
    subtraction is exact for large offsets; other data are centred in float64 first."""
    mean = a.mean(axis=0, dtype=np.float64)
    out = np.empty((a.shape[0] + extra, a.shape[1]), dtype=np.float32)
    if a.dtype == np.float32:
        shift = mean.astype(np.float32)
        np.subtract(a, shift, out=out[:a.shape[0]])
        return mean, out, mean - shift
    out[:a.shape[0]] = a - mean
    return mean, out, np.zeros_like(mean)


def _rank_one(target: np.ndarray, alpha: float, u: np.ndarray, v: np.ndarray) -> None:
    """``target += alpha * outer(u, v)`` in place, without an (n, m) temporary (BLAS dger)."""
    if alpha == 0:
        return
    from scipy.linalg.blas import dger

    # target is C-ordered: its transpose is the Fortran array dger updates in place
    dger(alpha, v, u, a=target.T, overwrite_a=True)


def _sumsq(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->j", a, a, dtype=np.float64)


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
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            cols = np.flatnonzero(~np.isfinite(a).all(axis=0))
            raise NeurocorrError(f"{metric}: the batch of model {side} holds NaN/Inf in neuron(s) "
                                 f"{cols[:10].tolist()}{' ...' if cols.size > 10 else ''}; "
                                 "fix the model or the probe, or leave those layers out")
