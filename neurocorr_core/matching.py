"""Built-in matching strategies (the built-in plugin, :mod:`neurocorr_core.builtins`, offers them).

Every strategy turns a score matrix (rows: neurons of one model, columns: the other's;
higher is better) into one partner per row, -1 and score 0 for a row left without one:

- ``max``: each row's best column (the seed paper). Ties go to the lowest column index.
- ``mutual``: only pairs that are each other's best match (mutual nearest neighbours);
  the other rows have no partner and score 0.
- ``hungarian``: the one-to-one assignment of largest total score (rectangular allowed:
  with more rows than columns, the rows left over score 0).

Each also works from :class:`~neurocorr_core.interfaces.Candidates`, the entries the core
keeps when the similarity is computed in tiles; see docs/matching.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import NeurocorrError
from .interfaces import Candidates, Match, MatchingStrategy
from .tiles import column_best


def _empty(rows: int) -> Match:
    return Match(np.full(rows, -1, dtype=np.int64), np.zeros(rows))


def _best_per_line(lines: np.ndarray, other: np.ndarray, values: np.ndarray,
                   n: int) -> tuple[np.ndarray, np.ndarray]:
    """For entries (line, other, value): each line's best ``other`` and its value; ties go
    to the lowest ``other`` index (as numpy.argmax does); -1 and 0 for a line with none."""
    best, value = np.full(n, -1, dtype=np.int64), np.zeros(n)
    if len(lines) == 0:
        return best, value
    order = np.lexsort((other, -values, lines))
    first = np.ones(len(order), dtype=bool)
    first[1:] = lines[order][1:] != lines[order][:-1]
    pick = order[first]
    best[lines[pick]] = other[pick]
    value[lines[pick]] = values[pick]
    return best, value


class MaxMatching(MatchingStrategy):
    """Every row's best column: the seed paper's best match. Ties go to the lowest index."""

    name = "max"
    candidates = 1

    def match(self, scores: np.ndarray) -> Match:
        if scores.shape[1] == 0:
            return _empty(scores.shape[0])
        if scores.ndim == 2 and scores.shape[0] > 1 and abs(scores.strides[0]) < abs(scores.strides[1]):
            # a transposed view (columns of a C-ordered matrix): argmax across its rows is
            # many times slower than a strip-wise max (same ties: the lowest index wins)
            partner, value = column_best(scores.T)
            return Match(partner, value)
        partner = np.argmax(scores, axis=1)
        return Match(partner, scores[np.arange(scores.shape[0]), partner])

    def match_candidates(self, cand: Candidates) -> Match:
        partner, score = _best_per_line(cand.rows, cand.cols, cand.values, cand.shape[0])
        return Match(partner, score)


class MutualMatching(MatchingStrategy):
    """Pairs (i, j) where j is i's best column and i is j's best row (lowest index on
    ties, as for ``max``). Rows without such a pair get partner -1 and score 0, so the
    network score is the mean over all rows; ``Comparison.matched_fraction`` says how many
    rows found a mutual partner."""

    name = "mutual"
    candidates = 1
    one_to_one = True

    def match(self, scores: np.ndarray) -> Match:
        rows, cols = scores.shape
        if rows == 0 or cols == 0:
            return _empty(rows)
        best_col = np.argmax(scores, axis=1)
        best_row = np.argmax(scores, axis=0)
        return self._pairs(best_col, best_row, scores[np.arange(rows), best_col])

    def match_candidates(self, cand: Candidates) -> Match:
        best_col, value = _best_per_line(cand.rows, cand.cols, cand.values, cand.shape[0])
        best_row, _ = _best_per_line(cand.cols, cand.rows, cand.values, cand.shape[1])
        return self._pairs(best_col, best_row, value)

    @staticmethod
    def _pairs(best_col: np.ndarray, best_row: np.ndarray, value: np.ndarray) -> Match:
        has = best_col >= 0
        mutual = np.zeros(len(best_col), dtype=bool)
        mutual[has] = best_row[best_col[has]] == np.flatnonzero(has)
        return Match(np.where(mutual, best_col, -1), np.where(mutual, value, 0.0))


class HungarianMatching(MatchingStrategy):
    """The one-to-one assignment of largest total score (scipy's linear_sum_assignment).

    With more rows than columns, the rows left unassigned get partner -1 and score 0 (they
    count in the network score's mean), so the score never exceeds that of ``max``.
    Constant neurons are an error by default: their similarity is undefined, and an
    assignment would hand them arbitrary partners. In tiles, the assignment is solved on
    each row's and column's ``top_k`` best entries (exact when ``top_k`` reaches the
    number of columns; see docs/matching.md).
    """

    name = "hungarian"
    constant_neurons = "error"
    one_to_one = True

    def __init__(self, *, top_k: int = 16, **options: Any) -> None:
        super().__init__(**options)
        if int(top_k) < 1:
            raise NeurocorrError(f"hungarian top_k must be at least 1, got {top_k}")
        self.candidates = int(top_k)

    def match(self, scores: np.ndarray) -> Match:
        from scipy.optimize import linear_sum_assignment

        _check_finite(scores)
        rows, cols = scores.shape
        if rows == 0 or cols == 0:
            return _empty(rows)
        r, c = linear_sum_assignment(scores, maximize=True)
        partner, score = np.full(rows, -1, dtype=np.int64), np.zeros(rows)
        partner[r], score[r] = c, scores[r, c]
        return Match(partner, score)

    def match_candidates(self, cand: Candidates) -> Match:
        """The best assignment using only the candidate entries. Every row also gets a
        private 'no partner' column costing more than any real entry, so an assignment of
        all rows always exists and rows go unmatched only when the candidates force it."""
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import min_weight_full_bipartite_matching

        _check_finite(cand.values)
        rows, cols = cand.shape
        if rows == 0:
            return _empty(0)
        # Costs must be non-zero for scipy (a zero entry is no edge): scores lie in [-1, 1],
        # so 2 - score lies in [1, 3], and 4 marks the private 'no partner' column.
        own = np.arange(rows)
        graph = csr_matrix((np.concatenate([2.0 - cand.values, np.full(rows, 4.0)]),
                            (np.concatenate([cand.rows, own]), np.concatenate([cand.cols, cols + own]))),
                           shape=(rows, cols + rows))
        r, c = min_weight_full_bipartite_matching(graph)
        partner, score = np.full(rows, -1, dtype=np.int64), np.zeros(rows)
        real = c < cols
        partner[r[real]] = c[real]
        # look the chosen entries' scores up among the candidates (no (row, col) repeats)
        keys = cand.rows * cols + cand.cols
        order = np.argsort(keys)
        found = order[np.searchsorted(keys, r[real] * cols + c[real], sorter=order)]
        score[r[real]] = cand.values[found]
        return Match(partner, score)


def _check_finite(values: np.ndarray) -> None:
    """NaN means a constant neuron; name the rows and columns that hold it."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    if values.ndim == 2:
        rows = np.flatnonzero(bad.any(axis=1))
        cols = np.flatnonzero(bad.any(axis=0))
        where = f"rows {_few(rows)} and columns {_few(cols)}"
    else:
        where = f"{int(bad.sum())} entries"
    raise NeurocorrError(f"hungarian matching got NaN scores at {where}: the similarity of a constant "
                         "(dead) neuron is undefined. Replace NaN by 0 to score those neurons 0, or "
                         "leave them out; compare() names them by layer")


def _few(indices: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:limit])
    return f"[{shown}{', ...' if len(indices) > limit else ''}] ({len(indices)})"

