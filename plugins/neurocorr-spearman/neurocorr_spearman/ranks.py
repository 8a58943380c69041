"""Average ranks (ties share the mean of their positions), column by column."""

from __future__ import annotations

import numpy as np

#: Peak bytes :func:`average_ranks` allocates per input value (measured with tracemalloc in
#: the tests, rounded up): a transposed copy, the sort order, tie groups and the result.
RANK_BYTES_PER_VALUE = 48


def average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n of every column of ``a`` (n, k), ties given their average rank, float64 (n, k).

    The same ranks as ``scipy.stats.rankdata(a, axis=0)`` (method ``average``). The result is
    a transposed view of a (k, n) array: each column is sorted as a contiguous row.
    """
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
