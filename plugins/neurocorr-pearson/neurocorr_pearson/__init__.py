"""Pearson correlation between every pair of neurons, streamed over the probe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from neurocorr_core import Metric, hookimpl
from neurocorr_core.backend import SMALL_PRODUCT, NumpyBackend
from neurocorr_core.stats import CoMoments

_CHUNK = 4096  # neurons per step when computing per-neuron moments of stored activations


class Pearson(Metric):
    """r(i, j) for every neuron i of A and j of B; NaN where a neuron is constant.

    Default mode: streaming co-moments, memory O(n_a * n_b) whatever the number of
    samples. Tiled mode (``tiled=True``, chosen by the core under a memory budget): the
    activations are kept, memory O(samples * (n_a + n_b)), and any block of r is one
    float32 GEMM of standardised columns (:meth:`tile`), so n_a * n_b never has to fit.
    """

    name = "pearson"
    level = "neuron"
    tiles = True

    def __init__(self, sizes_a: Sequence[int], sizes_b: Sequence[int], *, tiled: bool = False,
                 samples: int | None = None, **options: Any) -> None:
        super().__init__(sizes_a, sizes_b, **options)
        n_a, n_b = sum(self.sizes_a), sum(self.sizes_b)
        self.tiled = tiled
        self.moments = None if tiled else CoMoments(n_a, n_b)
        self.store_a = _Stored(n_a, samples) if tiled else None
        self.store_b = _Stored(n_b, samples) if tiled else None

    @classmethod
    def tiled_state_bytes(cls, sizes_a: Sequence[int], sizes_b: Sequence[int], samples: int) -> int:
        n = sum(sizes_a) + sum(sizes_b)
        # the activations and their standardised copy (float32), moments, one float64 block
        return 8 * samples * n + 16 * n + 8 * samples * min(n, _CHUNK)

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        if self.moments is not None:
            self.moments.update(x, y)
            return
        assert self.store_a is not None and self.store_b is not None
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"batch lengths differ: {x.shape[0]} vs {y.shape[0]}")
        self.store_a.append(x)
        self.store_b.append(y)

    def merge(self, other: Metric) -> None:
        if not isinstance(other, Pearson) or (other.sizes_a, other.sizes_b) != (self.sizes_a, self.sizes_b) \
                or other.tiled != self.tiled:
            raise TypeError("can only merge a Pearson metric over the same layers, in the same mode")
        if self.moments is not None and other.moments is not None:
            self.moments.merge(other.moments)
            return
        assert self.store_a and self.store_b and other.store_a and other.store_b
        self.store_a.append(other.store_a.array())
        self.store_b.append(other.store_b.array())

    def compute(self) -> np.ndarray:
        if self.moments is not None:
            return self.moments.correlation()
        r = self.tile(slice(None), slice(None)).astype(np.float64)
        dead_a, dead_b = self.constant()
        r[dead_a, :] = np.nan
        r[:, dead_b] = np.nan
        return np.clip(r, -1.0, 1.0, out=r)

    def tile(self, rows: slice, cols: slice) -> np.ndarray:
        """r for A's neurons ``rows`` x B's neurons ``cols``: float32 or float64 (tiled mode,
        0 for constant neurons) or float64 (default mode, NaN for constant neurons)."""
        if self.moments is not None:
            m = self.moments
            with np.errstate(divide="ignore", invalid="ignore"):
                return m.xy[rows, cols] / np.outer(np.sqrt(m.var_x[rows]), np.sqrt(m.var_y[cols]))
        assert self.store_a is not None and self.store_b is not None
        # z-scores with unit norm per column, so that za^T zb is r itself
        za, zb = self.store_a.standardised(rows), self.store_b.standardised(cols)
        if za.shape[1] * zb.shape[1] > SMALL_PRODUCT:
            return za.T @ zb
        # a small tile: the product in float64 (the core's rule, SMALL_PRODUCT), so that
        # |r - r_float64| stays under 1e-6 (a float32 GEMM over 1,797 samples reached 2.2e-6)
        out = np.zeros((za.shape[1], zb.shape[1]))
        NumpyBackend().add_product(out, za, zb)
        return out

    def constant(self) -> tuple[np.ndarray, np.ndarray]:
        if self.moments is not None:
            return self.moments.var_x == 0, self.moments.var_y == 0
        assert self.store_a is not None and self.store_b is not None
        return self.store_a.moments()[1] == 0, self.store_b.moments()[1] == 0

    @property
    def count(self) -> int:
        if self.moments is not None:
            return self.moments.n
        assert self.store_a is not None
        return self.store_a.rows


class _Stored:
    """One model's activations (samples, neurons) as float32, with per-neuron mean and sum
    of squared deviations in float64 (two passes, so no precision is lost to offsets)."""

    def __init__(self, neurons: int, samples: int | None) -> None:
        self.neurons = neurons
        self.data = np.empty((samples or 0, neurons), dtype=np.float32)
        self.rows = 0
        self._moments: tuple[np.ndarray, np.ndarray] | None = None
        self._z: np.ndarray | None = None  # standardised copy, made once for all tiles

    def append(self, batch: np.ndarray) -> None:
        end = self.rows + batch.shape[0]
        if end > self.data.shape[0]:  # more samples than announced: grow (amortised)
            grown = np.empty((max(end, 2 * self.data.shape[0]), self.neurons), dtype=np.float32)
            grown[:self.rows] = self.data[:self.rows]
            self.data = grown
        self.data[self.rows:end] = batch
        self.rows = end
        self._moments = None
        self._z = None

    def array(self) -> np.ndarray:
        return self.data[:self.rows]

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        if self._moments is None:
            x = self.array()
            mean, ss = np.zeros(self.neurons), np.zeros(self.neurons)
            for start in range(0, self.neurons, _CHUNK):
                block = x[:, start:start + _CHUNK]
                mean[start:start + _CHUNK] = block.mean(axis=0, dtype=np.float64)
                dev = block - mean[start:start + _CHUNK]
                ss[start:start + _CHUNK] = np.einsum("ij,ij->j", dev, dev)
            self._moments = mean, ss
        return self._moments

    def standardised(self, cols: slice) -> np.ndarray:
        """(samples, len(cols)) float32 view: (x - mean) / sqrt(ss); 0 for a constant neuron.
        All neurons are standardised once (a float32 copy), not once per tile."""
        if self._z is None:
            mean, ss = self.moments()
            scale = np.zeros_like(ss)
            live = ss > 0
            scale[live] = 1.0 / np.sqrt(ss[live])
            x = self.array()
            self._z = np.empty(x.shape, dtype=np.float32)
            for start in range(0, self.neurons, _CHUNK):  # column blocks bound the float64 temporary
                block = slice(start, start + _CHUNK)
                # centre in float64: a float32 mean would shift every value when offsets are large
                self._z[:, block] = (x[:, block] - mean[block]) * scale[block]
        return self._z[:, cols]


@hookimpl
def neurocorr_similarity_metrics() -> list[type[Metric]]:
    return [Pearson]
