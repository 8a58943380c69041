"""Average ranks (ties share the mean of their positions), column by column."""

from __future__ import annotations

import itertools
import os
import sys

import numpy as np

#: Peak bytes :func:`average_ranks` allocates per input value (measured with tracemalloc in
#: the tests, rounded up): a transposed copy, the sort order, tie groups and the result.
RANK_BYTES_PER_VALUE = 48


def average_ranks(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Ranks 1..n of every column of ``a`` (n, k), ties given their average rank, float64 (n, k).

    The same ranks as ``scipy.stats.rankdata(a, axis=0)`` (method ``average``). The result is
    a transposed view of a (k, n) array: each column is sorted as a contiguous row. ``out``
    (n, k), any float dtype (ranks are multiples of 0.5: float32 holds them exactly up to
    2**23 samples), receives the ranks instead, and is returned. float32 columns take the fast
    path (:func:`_ranks_float32`), split over the CPU cores.
    """
    if a.dtype == np.float32 and a.shape[0] < 2**31:
        target = np.empty((a.shape[1], a.shape[0])) if out is None else out.T
        _parallel_float32(a, target)
        return target.T
    if out is not None:
        out[...] = average_ranks(np.asarray(a, dtype=np.float64))
        return out
    rows = np.ascontiguousarray(a.T)  # sorting contiguous rows is several times faster
    k, n = rows.shape
    order = np.argsort(rows, axis=1)  # any order within a tie: tied values share one rank
    order += (np.arange(k) * n)[:, None]  # flat indices into rows, so all k rows are one array
    flat = rows.reshape(-1)[order.reshape(-1)]  # every row sorted, rows one after another
    del rows
    starts = np.empty(flat.size, bool)  # a tie group starts at a new value or a new row
    starts[0] = True
    np.not_equal(flat[1:], flat[:-1], out=starts[1:])
    starts[::n] = True
    del flat
    first = np.flatnonzero(starts)  # flat position of each tie group's first value
    del starts
    counts = np.diff(first, append=k * n)  # values per tie group
    # twice the mean 0-based position within the row: first + last - 2 * row * n
    twice = first * 2
    twice += counts
    twice -= 1
    np.floor_divide(first, n, out=first)
    first *= 2 * n
    twice -= first
    del first
    ranks = np.repeat(twice, counts)  # in sorted order
    del twice, counts
    out = np.empty(k * n)
    out[order.reshape(-1)] = ranks
    del order, ranks
    out *= 0.5
    out += 1.0
    return out.reshape(k, n).T


def _parallel_float32(a: np.ndarray, out: np.ndarray) -> None:
    """:func:`_ranks_float32` into ``out`` (k, n) on column blocks in threads (numpy's sort and
    ufuncs release the GIL), as many as BLAS may use: the cores the correlation's GEMMs use."""
    from concurrent.futures import ThreadPoolExecutor

    from neurocorr_core.backend import blas_threads

    n, k = a.shape
    workers = max(1, min(k, blas_threads() or os.cpu_count() or 1, os.cpu_count() or 1))
    if workers == 1 or n * k < 1 << 16:
        _ranks_float32(a, out)
        return
    edges = np.linspace(0, k, workers + 1).astype(int)
    with ThreadPoolExecutor(workers) as pool:
        jobs = [pool.submit(_ranks_float32, a[:, lo:hi], out[lo:hi]) for lo, hi in itertools.pairwise(edges)]
        for job in jobs:
            job.result()


def _ranks_float32(a: np.ndarray, out: np.ndarray) -> None:
    """Average ranks of the float32 columns of ``a`` (n, k) into ``out`` (k, n), any float dtype.

    Each value becomes one uint64 key: its float32 bits mapped to an unsigned integer of the
    same order (high word), above its row position (low word). A plain integer sort of the
    keys (numpy's vectorised sort, several times faster than argsort) gives every row's order
    and its sorted values at once. A tie group spans sorted positions f..l; its average 1-based
    rank is (f + l) / 2 + 1, with f and l spread over the group by running max/min. Few large
    arrays are made (fresh pages are costly): 25 bytes per value besides ``out``.
    """
    k, n = a.shape[1], a.shape[0]
    keys = np.empty((k, n), dtype=np.uint64)
    words = keys.view(np.uint32).reshape(k, n, 2)
    high, low = (1, 0) if sys.byteorder == "little" else (0, 1)
    value = words[:, :, high]
    np.add(a.T, np.float32(0.0), out=value.view(np.float32))  # + 0.0: -0.0 becomes 0.0
    flip = (value.view(np.int32) >> 31).view(np.uint32)  # all ones for negative numbers
    flip |= np.uint32(0x80000000)
    value ^= flip  # negative: every bit inverted; otherwise the sign bit set: float order
    del flip
    words[:, :, low] = np.arange(n, dtype=np.uint32)
    keys.sort(axis=1)
    edge = np.empty((k, n), dtype=bool)  # a tie group starts here
    edge[:, 0] = True
    np.not_equal(value[:, 1:], value[:, :-1], out=edge[:, 1:])
    positions = np.arange(n, dtype=np.int32)
    first = np.where(edge, positions, np.int32(0))
    np.maximum.accumulate(first, axis=1, out=first)
    edge[:, :-1] = edge[:, 1:]  # now: a tie group ends here
    edge[:, -1] = True
    last = np.where(edge[:, ::-1], positions[::-1], np.int32(n - 1))  # reversed rows, contiguous
    del edge
    np.minimum.accumulate(last, axis=1, out=last)
    rank = np.add(first, last[:, ::-1], dtype=np.float64)
    del first, last
    rank *= 0.5
    rank += 1.0
    keys &= np.uint64(0xFFFFFFFF)  # the row positions, in sorted order
    np.put_along_axis(out, keys.view(np.int64), rank, axis=1)
