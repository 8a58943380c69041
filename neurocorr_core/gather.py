"""Gathering samples into chunks for :class:`~neurocorr_core.stats.CoMoments`: how many
samples a chunk holds, and each side's float32 chunk buffer, filled with ``x - k`` (``k`` a
float32 centre) while the float64 sums of ``x - k`` and of its squares are taken in the same pass.
"""

from __future__ import annotations

from contextvars import ContextVar

import numpy as np

#: Fewest samples per GEMM. Each chunk's float32 product is added into the float64 accumulators
#: in one single-threaded pass: longer chunks make fewer (linear CKA, 2,048 + 2,048 neurons: 0.62 s
#: of adds with chunks of 4,096 samples, 0.29 s with 16,384), but the float32 buffer costs memory
#: (chunk * (n_x + n_y) * 4 bytes): chunks grow up to 4 * CHUNK while the buffer stays under
#: CHUNK_BYTES and under 4 times the accumulators' bytes (1,024 + 1,024 Pearson: 4,096, 32 MB).
CHUNK = 4096
CHUNK_BYTES = 1 << 28
#: The most samples per chunk while the batches are overlapped with the metric (:mod:`.overlap`):
#: the products of short chunks interleave with the forwards, where a long chunk's wait to fill
#: (two small MLPs, 10,000 samples: 6,655 a chunk) left the metric's thread idle at the start.
OVERLAP_CHUNK = 2048
short_chunks: ContextVar[bool] = ContextVar("short_chunks", default=False)


def chunk_rows(n_x: int, n_y: int, pairs: int = 0) -> int:
    """Samples per chunk for n_x + n_y neurons and ``pairs`` (default n_x * n_y) accumulated."""
    width = max(n_x + n_y, 1)
    rows = max(CHUNK, min(4 * CHUNK, CHUNK_BYTES // (4 * width), 8 * (pairs or n_x * n_y) // width))
    return min(rows, OVERLAP_CHUNK) if short_chunks.get() else rows


#: Rows summed in float32 before float64 takes over: a float32 sum of k squares errs by up to k
#: roundings (256 rows: 3e-6 relative on digits MLPs' ReLUs, 32: 2e-7), and it takes half the
#: time of summing a float64 copy (1,024 neurons x 65,536 samples: 0.066 s against 0.103 s).
SUM_ROWS = 32
#: float32 sums of squares under this are redone in float64 (underflow; 0 tells a constant neuron).
TINY = 1e-30


class Gather:
    """One side's part of the chunk being gathered: rows ``x - k`` (float32), with the
    float64 sums of ``x - k`` and of its squares over those rows."""

    #: Rows shifted at once: at most 2^16 values (0.25 MB), still in the CPU's L2 cache for the
    #: sums (2^19 took 30% longer), and at least 16.
    @staticmethod
    def block(width: int) -> int:
        return max(16, min(256, (1 << 16) // max(width, 1)))

    def __init__(self, width: int, rows: int) -> None:
        self.buf = np.empty((rows, width), dtype=np.float32)
        self.shift32 = np.zeros(width, dtype=np.float32)
        self.shift = np.zeros(width)
        self.sum = np.zeros(width)
        self.sumsq = np.zeros(width)
        #: True once a batch that is not float32 came: constant neurons are then told by the
        #: running min/max of the raw values, since the float64 shift need not be one of them.
        self.raw = False

    def reset(self) -> None:
        self.sum[:] = 0.0
        self.sumsq[:] = 0.0

    def add(self, a: np.ndarray, start: int) -> None:
        """Put ``a`` (rows, width) at buffer row ``start`` (0 starts a new chunk)."""
        if start == 0:  # the chunk's centre: its first batch's mean, rounded to float32
            np.copyto(self.shift32, a.mean(axis=0, dtype=np.float64), casting="unsafe")
            self.shift[:] = self.shift32
        if a.dtype != np.float32:
            dev = np.asarray(a, dtype=np.float64) - self.shift
            self.buf[start:start + a.shape[0]] = dev
            self.sum += dev.sum(axis=0)
            self.sumsq += np.einsum("ij,ij->j", dev, dev)
            return
        step = min(SUM_ROWS, self.block(a.shape[1]))
        for b0 in range(0, a.shape[0], step):
            rows = self.buf[start + b0:start + min(a.shape[0], b0 + step)]
            np.subtract(a[b0:b0 + step], self.shift32, out=rows)  # exact near the centre
            self.sum += rows.sum(axis=0)
            squares = np.einsum("ij,ij->j", rows, rows)
            tiny = squares < TINY
            if tiny.any():  # float32 squares of tiny values underflow: those columns in float64
                few = rows[:, tiny].astype(np.float64)
                self.sumsq[tiny] += np.einsum("ij,ij->j", few, few)
                squares[tiny] = 0.0
            self.sumsq += squares
