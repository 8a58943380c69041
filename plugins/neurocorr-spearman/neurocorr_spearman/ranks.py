"""Average ranks (ties share the mean of their positions), column by column.

Each column's values become unsigned integer keys of the same order, sorted by an LSD radix
sort of 16-bit digits: numpy's stable argsort of a 16-bit type is a radix sort (a few ns per
value), several times faster than a comparison sort of 64-bit keys. Tie groups are found in
the sorted keys and given the mean of their 1-based positions; the ranks are then scattered
back to the rows they came from.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import numpy as np

#: Peak bytes :func:`average_ranks` allocates per input value: the keys, three int64 orders
#: while the radix passes compose them, the result, and the fetched column copy. Measured with
#: tracemalloc (the worst case: every value tied with one other), it depends on how the
#: threads' blocks overlap in time: 30-48.5 over 40 runs plus 8 for the copy, so 64 leaves room.
RANK_BYTES_PER_VALUE = 64
#: Tie groups are filled one slice each while there are at most this many per value of the
#: block (a Python step each); more, and they are filled by one cumulative sum.
RUNS_PER_VALUE = 1 / 1024
#: Values ranked at once by one thread: the block's arrays (a few MB) stay in cache and are
#: reused by the allocator; larger blocks cost fresh pages (page faults) on every block.
BLOCK_VALUES = 2**18


def average_ranks(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Ranks 1..n of every column of ``a`` (n, k), ties given their average rank, float64 (n, k).

    The same ranks as ``scipy.stats.rankdata(a, axis=0)`` (method ``average``) for values
    without NaN. The result is a transposed view of a (k, n) array. ``out`` (n, k), any float
    dtype (ranks are multiples of 0.5: float32 holds them exactly up to 2**23 samples),
    receives the ranks instead, and is returned. Column blocks are ranked in threads, as many
    as BLAS may use.
    """
    if a.dtype not in (np.float32, np.float64):
        a = np.asarray(a, dtype=np.float64)
    target = np.empty((a.shape[1], a.shape[0])) if out is None else out.T
    rank_columns(lambda lo, hi: a[:, lo:hi], target)
    return target.T


def rank_columns(fetch: Callable[[int, int], np.ndarray], out: np.ndarray, limit: int | None = None, *,
                 centred: bool = False, squares: np.ndarray | None = None) -> None:
    """Average ranks of columns ``lo:hi`` of some (n, k) data, got as ``fetch(lo, hi)`` (float32
    or float64), into rows ``lo:hi`` of ``out`` (k, n); at most ``limit`` columns at once.

    ``centred``: minus their mean, which is (n + 1) / 2 for every column, ties or not (exact:
    multiples of 0.5). ``squares`` (k,) receives each column's sum of squared centred ranks,
    exactly from its tie groups: (n^3 - n) / 12 less (t^3 - t) / 12 for each group of t values;
    0 for a constant column. Blocks of about :data:`BLOCK_VALUES` values are fetched and ranked
    in threads (numpy's sorts and ufuncs release the GIL), as many as BLAS may use: the cores
    the correlation's GEMMs use.
    """
    from concurrent.futures import ThreadPoolExecutor

    from neurocorr_core.backend import blas_threads

    k, n = out.shape
    limit = max(1, k if limit is None else limit)
    workers = max(1, min(k, limit, blas_threads() or os.cpu_count() or 1, os.cpu_count() or 1))
    step = max(1, min(BLOCK_VALUES // max(n, 1), limit // workers))
    blocks = [(lo, min(lo + step, k)) for lo in range(0, k, step)]

    def rank(block: tuple[int, int]) -> None:
        lo, hi = block
        _ranks(fetch(lo, hi), out[lo:hi], centred, None if squares is None else squares[lo:hi])

    if workers == 1 or len(blocks) == 1:
        for block in blocks:
            rank(block)
        return
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(rank, blocks):
            pass


def _ranks(a: np.ndarray, out: np.ndarray, centred: bool = False, squares: np.ndarray | None = None) -> None:
    """Average ranks of the float32 or float64 columns of ``a`` (n, k) into ``out`` (k, n); see
    :func:`rank_columns`."""
    if a.size == 0:
        return
    keys = sort_keys(a)
    del a  # a fetched copy: free it (every large array dropped as soon as it is spent)
    order = radix_order(keys)
    keys = np.take(keys, order)  # each row sorted
    tied = np.zeros((keys.shape[0], keys.shape[1] + 1), dtype=np.int8)  # 1: equal to the value before
    np.equal(keys[:, 1:], keys[:, :-1], out=tied[:, 1:-1].view(bool))
    del keys
    ranks = _sorted_ranks(tied, out.dtype, centred, squares)
    if out.flags.c_contiguous:
        out.reshape(-1)[order] = ranks
        return
    flat = np.empty(out.shape, out.dtype)  # a contiguous scatter, then one transposing copy
    flat.reshape(-1)[order] = ranks
    out[...] = flat


def _cubes(t: np.ndarray) -> np.ndarray:
    """(t^3 - t) / 12 in float64 for an array of integers t: the sum of squared
    deviations from their mean of t consecutive integers."""
    cubes = t.astype(np.float64)
    cubes *= cubes
    cubes -= 1.0
    cubes *= t
    cubes /= 12.0
    return cubes


def sort_keys(a: np.ndarray) -> np.ndarray:
    """The columns of ``a`` (n, k), float32 or float64, as rows (k, n) of unsigned integers
    in the same order as the floats: for a negative float every bit is inverted, otherwise
    the sign bit is set. -0.0 is first made +0.0 (equal floats, equal keys)."""
    bits = 8 * a.dtype.itemsize
    signed, unsigned = np.dtype(f"i{a.dtype.itemsize}"), np.dtype(f"u{a.dtype.itemsize}")
    keys = np.empty((a.shape[1], a.shape[0]), dtype=unsigned)
    np.add(a.T, a.dtype.type(0.0), out=keys.view(a.dtype))  # also the transposing copy
    flip = (keys.view(signed) >> (bits - 1)).view(unsigned)  # all ones for negative numbers
    flip |= unsigned.type(1 << (bits - 1))
    keys ^= flip
    return keys


def radix_order(keys: np.ndarray) -> np.ndarray:
    """Flat positions into ``keys`` (k, n) that sort each row: row r's values in ascending
    order are ``keys.reshape(-1)[result[r]]``. An LSD radix sort of 16-bit digits, each digit
    one stable argsort (numpy sorts 16-bit types stably by radix)."""
    k, n = keys.shape
    digits = keys.view(np.uint16).reshape(k, n, keys.dtype.itemsize // 2)
    if sys.byteorder == "big":
        digits = digits[:, :, ::-1]  # least significant digit first
    rows = np.arange(0, k * n, n)[:, None]
    order = np.argsort(digits[:, :, 0], axis=1, kind="stable")
    order += rows
    for d in range(1, digits.shape[2]):
        digit = np.take(np.ascontiguousarray(digits[:, :, d]), order)  # in the order so far
        step = np.argsort(digit, axis=1, kind="stable")
        del digit
        step += rows
        order = np.take(order, step)
    return order


def _sorted_ranks(tied: np.ndarray, dtype: np.dtype, centred: bool = False,
                  squares: np.ndarray | None = None) -> np.ndarray:
    """Average 1-based ranks (k, n), or (n,) for every row, of sorted rows whose ties are
    marked in ``tied`` (k, n + 1): 1 where a value equals the one before it, 0 elsewhere and in
    the first and last column. A value's rank is its position + 1, except in a tie group (a
    run of equal values), where every member gets the mean of the group's positions; less
    (n + 1) / 2 if ``centred``. ``squares`` (k,) receives each row's sum of squared centred
    ranks: that of n distinct ranks less what each tie group takes (:func:`_cubes`)."""
    k, n = tied.shape[0], tied.shape[1] - 1
    offset = (n + 1) / 2 if centred else 0.0
    base = (np.arange(n, dtype=np.float64) + (1.0 - offset)).astype(dtype)
    if squares is not None:
        squares[...] = _cubes(np.array(n))
    if not tied.any():
        return base  # broadcast over the rows
    edges = np.flatnonzero(np.diff(tied, axis=1))  # flat (k, n): each group's first, then last
    first, last = edges[0::2], edges[1::2]
    row = first // n
    if squares is not None:
        size = last - first
        size += 1
        squares -= np.bincount(row, weights=_cubes(size), minlength=k)
        del size
    twice = row  # (in place) twice the mean 1-based position of the group in its row
    twice *= -2 * n
    twice += first
    twice += last
    twice += 2
    ranks = np.empty((k, n), dtype)
    ranks[:] = base
    flat = ranks.reshape(-1)
    if first.size <= RUNS_PER_VALUE * flat.size:  # few groups (ReLU zeros): a slice each
        for start, stop, t in zip(first.tolist(), (last + 1).tolist(), twice.tolist(), strict=True):
            flat[start:stop] = 0.5 * t - offset
        return ranks
    # Many groups: +twice at each group's first position, -twice after its last, summed up
    # (exact: integers), gives twice the rank inside groups and 0 elsewhere.
    fill: np.ndarray = np.zeros(flat.size + 1, dtype=np.int64 if n >= 2**29 else np.int32)
    fill[first] += twice
    fill[last + 1] -= twice  # last + 1 may be another group's first: distinct indices, so += / -= are safe
    np.cumsum(fill[:-1], out=fill[:-1])
    inside = fill[:-1] > 0
    np.multiply(fill[:-1], 0.5, out=flat, where=inside, casting="unsafe")
    if offset:
        np.subtract(flat, offset, out=flat, where=inside, casting="unsafe")
    return ranks
