"""Exact Spearman correlation between every neuron of A and every neuron of B.

Spearman's rho is Pearson's r of the average ranks, so the metric keeps every sample
(:class:`~neurocorr_spearman.store.SampleStore`, spilled to disk beyond the memory budget)
and ranks each neuron over all samples in blocks of neurons. Average ranks need no running
moments: every column's mean is (n + 1) / 2, ties or not, and its sum of squares follows from
its tie groups, so the ranks are stored exactly centred and the co-moments are plain float32
GEMMs over chunks of samples, added in float64 (on the core's backend, as for Pearson). The
memory budget bounds everything that grows with the number of samples; the (n_a, n_b) result
and its accumulator (about 2 * n_a * n_b * 8 bytes) are on top of it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from neurocorr_core import Metric, NeurocorrError
from neurocorr_core import backend as backends
from neurocorr_core.stats import check_batch

from .ranks import RANK_BYTES_PER_VALUE, rank_columns
from .store import SampleStore

#: Default memory budget: 1 GiB.
DEFAULT_BUDGET = 2**30
#: Peak bytes per value when a chunk of rank rows is correlated: the rank rows read back, a
#: float32 copy (of float64 ranks, or by a backend that needs contiguous rows), and slack.
ROW_BYTES_PER_VALUE = 24
#: At most this many samples per correlation chunk: each chunk's float32 GEMM sums this
#: many products, and shorter sums keep the result within 1e-7 of float64.
MAX_ROWS = 2048
#: Average ranks are multiples of 0.5, exact in float32 up to this many samples.
FLOAT32_RANKS_UP_TO = 2**23

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(value: int | str) -> int:
    """A memory size: an int of bytes or a string such as ``"512MiB"``, ``"2GB"``, ``"1e9"``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        size = int(value)
    else:
        found = re.fullmatch(r"\s*([0-9.eE+]+)\s*([a-zA-Z]*)\s*", str(value))
        unit = found.group(2).lower() if found else ""
        if not found or unit not in _UNITS:
            raise NeurocorrError(f"spearman: memory_budget {value!r} is not a size; give bytes as "
                                 "an int or a string such as '512MiB' or '2GB'")
        try:
            size = int(float(found.group(1)) * _UNITS[unit])
        except ValueError:
            raise NeurocorrError(f"spearman: memory_budget {value!r} is not a size; give bytes as "
                                 "an int or a string such as '512MiB' or '2GB'") from None
    if size <= 0:
        raise NeurocorrError(f"spearman: memory_budget must be positive; got {value!r}")
    return size


class Spearman(Metric):
    """Spearman's rho for every neuron pair (average ranks for ties); NaN for constant neurons.

    Options: ``memory_budget`` (bytes or a string like ``"512MiB"``; default 1 GiB) bounds the
    memory used for samples and ranks; samples beyond it go to a raw file in a private
    directory under ``tmp_dir`` (default: the system temp dir), removed by :meth:`close`, at
    the end of a ``with`` block, when the metric is garbage-collected, or at exit.
    """

    name = "spearman"
    level = "neuron"
    takes_memory_budget = True  # compare()'s memory_budget bounds what this metric keeps in memory

    def __init__(self, sizes_a: Sequence[int], sizes_b: Sequence[int], *,
                 memory_budget: int | str = DEFAULT_BUDGET, tmp_dir: str | None = None,
                 **options: Any) -> None:
        if options:
            raise NeurocorrError(f"spearman: unknown option(s) {sorted(options)}; "
                                 "the options are memory_budget and tmp_dir")
        super().__init__(sizes_a, sizes_b, memory_budget=memory_budget, tmp_dir=tmp_dir)
        if not self.sizes_a or not self.sizes_b or min(self.sizes_a + self.sizes_b) < 1:
            raise NeurocorrError(f"spearman: every layer needs at least one neuron; got sizes "
                                 f"{list(self.sizes_a)} and {list(self.sizes_b)}")
        self.budget = parse_bytes(memory_budget)
        self.n_a, self.n_b = sum(self.sizes_a), sum(self.sizes_b)
        width = self.n_a + self.n_b
        self._check_budget(0)
        self.tmp_dir = tmp_dir
        self.store: SampleStore | None = None  # made by the first batch, which fixes the dtype
        self._lo = np.full(width, np.inf)
        self._hi = np.full(width, -np.inf)
        self._cache: np.ndarray | None = None

    # -- the Metric contract -------------------------------------------------------------
    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        check_batch(x, y, self.n_a, self.n_b, self.name)
        self._append(np.hstack([x, y]))

    def merge(self, other: Metric) -> None:
        if not isinstance(other, Spearman) or (other.sizes_a, other.sizes_b) != (self.sizes_a,
                                                                                self.sizes_b):
            raise NeurocorrError("spearman: can only merge a Spearman metric built over the same "
                                 f"layer sizes ({list(self.sizes_a)}, {list(self.sizes_b)})")
        if other is self:
            raise NeurocorrError("spearman: cannot merge a metric into itself")
        if other.store is None:
            return
        step = max(1, self.budget // (8 * (self.n_a + self.n_b) * other.store.dtype.itemsize))
        for rows in other.store.rows(step):
            self._append(rows)

    def compute(self) -> np.ndarray:
        if self.store is None or self.store.n < 2:
            raise NeurocorrError(f"spearman: needs at least 2 samples; got {self.count}. "
                                 "Give a probe with more samples")
        if self._cache is None:
            self._cache = self._correlate(self.store)
        return self._cache.copy()

    def constant(self) -> tuple[np.ndarray, np.ndarray]:
        flat = self._lo == self._hi
        return flat[:self.n_a], flat[self.n_a:]

    @property
    def count(self) -> int:
        return 0 if self.store is None else self.store.n

    # -- resources -----------------------------------------------------------------------
    def close(self) -> None:
        """Drop the kept samples and remove the spill directory (if any)."""
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> Spearman:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def spilled(self) -> bool:
        """True once the samples live in a temporary file."""
        return self.store is not None and self.store.spilled

    # -- internals -----------------------------------------------------------------------
    def _append(self, rows: np.ndarray) -> None:
        if self.store is None:
            dtype = np.float32 if rows.dtype in (np.float32, np.float16) else np.float64
            self.store = SampleStore(rows.shape[1], np.dtype(dtype), self.tmp_dir)
        n = self.store.n + rows.shape[0]
        self._check_budget(n)
        self.store.append(rows, in_ram=self._ram_bytes(n) + self._work_bytes(n) <= self.budget)
        np.minimum(self._lo, rows.min(axis=0, initial=np.inf), out=self._lo)
        np.maximum(self._hi, rows.max(axis=0, initial=-np.inf), out=self._hi)
        self._cache = None

    def _ram_bytes(self, n: int) -> int:
        """Samples plus their ranks, both in RAM (the unspilled case)."""
        assert self.store is not None
        return n * self.store.width * (self.store.dtype.itemsize + _rank_dtype(n).itemsize)

    def _work_bytes(self, n: int) -> int:
        """The least working memory: rank one neuron over n samples, or correlate one sample."""
        return max(n * RANK_BYTES_PER_VALUE, (self.n_a + self.n_b) * ROW_BYTES_PER_VALUE)

    def _check_budget(self, n: int) -> None:
        need = self._work_bytes(n)
        if need > self.budget:
            raise NeurocorrError(
                f"spearman: memory_budget={self.budget} bytes is too small for even one chunk: "
                f"ranking one neuron over {n} samples needs {n * RANK_BYTES_PER_VALUE} bytes "
                f"({RANK_BYTES_PER_VALUE} per sample) and correlating one sample of "
                f"{self.n_a + self.n_b} neurons needs {(self.n_a + self.n_b) * ROW_BYTES_PER_VALUE}; "
                f"set memory_budget >= {need} (more if more samples follow)")

    def _correlate(self, store: SampleStore) -> np.ndarray:
        n, width = store.n, store.width
        work = self.budget - (0 if store.spilled else self._ram_bytes(n))
        cols = max(1, min(width, work // (n * RANK_BYTES_PER_VALUE)))  # ranked at once
        rows = max(1, min(n, MAX_ROWS, work // (width * ROW_BYTES_PER_VALUE)))
        ranks = store.scratch((n, width), _rank_dtype(n))
        try:
            squares = np.empty(width)
            rank_columns(store.columns, ranks.T, limit=cols, centred=True, squares=squares)
            # The ranks are centred exactly (their mean is known), so their co-moments are
            # plain sums of products: one float32 GEMM per chunk of rows, added in float64.
            backend = backends.resolve()
            moments = backend.zeros(self.n_a, self.n_b)
            for r in range(0, n, rows):
                block = np.asarray(ranks[r:r + rows], dtype=np.float32)
                backend.add_product(moments, block[:, :self.n_a], block[:, self.n_a:])
            rho = backend.scaled(moments, _inverse_sqrt(squares[:self.n_a]), _inverse_sqrt(squares[self.n_a:]))
            return np.clip(rho, -1.0, 1.0, out=rho)  # NaN (a constant neuron) stays NaN
        finally:
            del ranks
            store.drop_scratch()


def _inverse_sqrt(squares: np.ndarray) -> np.ndarray:
    """1 / sqrt(squares), NaN where it is 0 (a constant neuron: all its ranks tie)."""
    out = np.full(squares.shape, np.nan)
    np.divide(1.0, np.sqrt(squares), out=out, where=squares > 0)
    return out


def _rank_dtype(n: int) -> np.dtype:
    return np.dtype(np.float32 if n <= FLOAT32_RANKS_UP_TO else np.float64)
