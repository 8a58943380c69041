"""Streaming first and second moments of two neuron sets, merged exactly across shards.

Every batch is centred on its own mean in float64, cast to float32 for the GEMM (the
expensive part) and its products are accumulated in float64. Batches and shards are
combined with Chan et al.'s pairwise update, so neither large offsets nor many samples
cost precision: ``E[x^2] - E[x]^2`` is never formed.
"""

from __future__ import annotations

import numpy as np


class CoMoments:
    """n, per-neuron means and centred co-moments ``sum (x - mean_x)(y - mean_y)^T``.

    ``within=False`` keeps only the diagonals of the within-model blocks (enough for
    Pearson); ``within=True`` keeps the full ``xx`` and ``yy`` blocks (needed by linear CKA).
    """

    def __init__(self, n_x: int, n_y: int, *, within: bool = False) -> None:
        self.within = within
        self.n = 0
        self.mean_x = np.zeros(n_x)
        self.mean_y = np.zeros(n_y)
        self.xy = np.zeros((n_x, n_y))
        self.xx = np.zeros((n_x, n_x)) if within else np.zeros(n_x)
        self.yy = np.zeros((n_y, n_y)) if within else np.zeros(n_y)

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add a batch: ``x`` (batch, n_x), ``y`` (batch, n_y), same batch length."""
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"batch lengths differ: {x.shape[0]} vs {y.shape[0]}")
        if x.shape[0] == 0:
            return
        batch = CoMoments(x.shape[1], y.shape[1], within=self.within)
        batch.n = x.shape[0]
        batch.mean_x, xc = _centre(x)
        batch.mean_y, yc = _centre(y)
        batch.xy = _gemm(xc, yc)
        batch.xx = _gemm(xc, xc) if self.within else _sumsq(xc)
        batch.yy = _gemm(yc, yc) if self.within else _sumsq(yc)
        self.merge(batch)

    def merge(self, other: CoMoments) -> None:
        """Fold in moments of other samples (Chan's formula)."""
        if other.n == 0:
            return
        if self.n == 0:
            self.__dict__.update({k: np.copy(v) if isinstance(v, np.ndarray) else v
                                  for k, v in other.__dict__.items()})
            return
        n = self.n + other.n
        w = self.n * other.n / n
        dx = other.mean_x - self.mean_x
        dy = other.mean_y - self.mean_y
        self.xy += other.xy + w * np.outer(dx, dy)
        self.xx += other.xx + w * (np.outer(dx, dx) if self.within else dx * dx)
        self.yy += other.yy + w * (np.outer(dy, dy) if self.within else dy * dy)
        self.mean_x += dx * (other.n / n)
        self.mean_y += dy * (other.n / n)
        self.n = n

    @property
    def var_x(self) -> np.ndarray:
        """Per-neuron sum of squared deviations of x (not divided by n)."""
        return np.diagonal(self.xx) if self.within else self.xx

    @property
    def var_y(self) -> np.ndarray:
        return np.diagonal(self.yy) if self.within else self.yy

    def correlation(self) -> np.ndarray:
        """Pearson r for every (x, y) neuron pair; NaN where either neuron is constant."""
        sx, sy = np.sqrt(self.var_x), np.sqrt(self.var_y)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = self.xy / np.outer(sx, sy)
        r[self.var_x == 0, :] = np.nan
        r[:, self.var_y == 0] = np.nan
        return np.clip(r, -1.0, 1.0, out=r)


def _centre(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The batch mean (float64) and the batch centred on it, as float32 for the GEMM."""
    mean = a.mean(axis=0, dtype=np.float64)
    return mean, np.asarray(a - mean, dtype=np.float32)


def _gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.T @ b).astype(np.float64)


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
