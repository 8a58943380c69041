"""Average ranks (ties share the mean of their positions), column by column."""

from __future__ import annotations

import numpy as np

#: Peak bytes :func:`average_ranks` allocates per input value (measured with tracemalloc in
#: the tests, rounded up): the sort order, the sorted values, tie boundaries, the result.
RANK_BYTES_PER_VALUE = 48


def average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n of every column of ``a`` (n, k), ties given their average rank, float64 (n, k).

    The same ranks as ``scipy.stats.rankdata(a, axis=0)`` (method ``average``).
    """
    n, k = a.shape
    order = np.argsort(a, axis=0, kind="stable")
    pos = np.arange(n, dtype=np.float64)[:, None]  # 0-based sorted position
    same = np.take_along_axis(a, order, axis=0)
    same = same[1:] == same[:-1]  # (n-1, k): True where a value ties with the one before it
    # First and last sorted position of each tie group, by a running max / min.
    first = np.where(np.vstack([np.zeros((1, k), bool), same]), 0.0, pos)
    np.maximum.accumulate(first, axis=0, out=first)
    last = np.where(np.vstack([same, np.zeros((1, k), bool)]), n, pos)
    last = np.minimum.accumulate(last[::-1], axis=0)[::-1]
    first += last
    first *= 0.5
    first += 1.0  # average of the 1-based positions first+1 .. last+1
    out = np.empty((n, k))
    np.put_along_axis(out, order, first, axis=0)
    return out
