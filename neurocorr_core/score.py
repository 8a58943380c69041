"""Aggregation: the seed paper's network score and the layer x layer table.

With r(i, j) the similarity of neuron i of A and neuron j of B, and d the depth index of
a neuron's layer among the selected layers (0 nearest the input)::

    score(A->B) = mean_i  max_j  |r(i, j)| / (|d(i) - d(j)| + 1)

an undefined r (a constant neuron) counts as 0; ``symmetric`` is the mean of both
directions. ``max`` is whatever matching strategy was chosen (a row the strategy leaves
without partner scores 0); ``depth_penalty="none"`` drops the denominator.

A layer-level metric (CKA) gives one number t(a, b) per pair of layers; its network score
is the same formula at layer granularity::

    score(A->B) = mean_a  max_b  t(a, b) / (|d(a) - d(b)| + 1)

(``max`` again the chosen strategy, over the layer table).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from .errors import NeurocorrError
from .interfaces import Match, MatchingStrategy
from .matching import MaxMatching
from .tiles import BlockBest

PENALTIES = ("paper", "none")
_NO_TABLE = np.zeros((0, 0))


@dataclass(frozen=True)
class Directional:
    """One direction (rows -> columns): every row's partner and pair score, their mean (the
    network score) and the layer table (rows' layers, columns' layers) without penalty."""

    score: float
    partner: np.ndarray
    value: np.ndarray
    table: np.ndarray


def check_penalty(penalty: str) -> str:
    if penalty not in PENALTIES:
        raise NeurocorrError(f"unknown depth penalty {penalty!r}; choose one of {', '.join(PENALTIES)}")
    return penalty


def similarity_scores(sim: np.ndarray, absolute: bool, overwrite: bool = False) -> np.ndarray:
    """|r| (or signed r) with undefined values as 0, the paper's convention: a new array, or
    ``sim`` itself with ``overwrite`` (float64 only; saves an (n, m) copy)."""
    out = sim if overwrite and sim.dtype == np.float64 else None
    if absolute:
        s = np.abs(sim, out=out)
        return np.fmax(s, 0.0, out=s)  # NaN -> 0 (fmax ignores NaN) in the same pass
    s = np.array(sim, dtype=np.float64) if out is None else out
    return np.nan_to_num(s, nan=0.0, copy=False)


def divisor(n_rows: int, n_cols: int, penalty: str) -> np.ndarray:
    """(row layers, column layers): ``|d(a) - d(b)| + 1`` for ``paper``, ones for ``none``."""
    check_penalty(penalty)
    if penalty == "none":
        return np.ones((n_rows, n_cols))
    return np.abs(np.arange(n_rows)[:, None] - np.arange(n_cols)[None, :]) + 1.0


def penalise(scores: np.ndarray, depth_a: np.ndarray, depth_b: np.ndarray, penalty: str) -> np.ndarray:
    """A new matrix: ``scores / (|d(i) - d(j)| + 1)`` for ``paper``, ``scores`` for ``none``."""
    if check_penalty(penalty) == "none":
        return scores
    return scores / (np.abs(depth_a[:, None] - depth_b[None, :]) + 1.0)


def penalise_blocks(scores: np.ndarray, sizes_r: Sequence[int], sizes_c: Sequence[int], penalty: str) -> None:
    """In place, block by block: the same values as :func:`penalise` without an
    (n_rows, n_cols) array of divisors."""
    div = divisor(len(sizes_r), len(sizes_c), penalty)
    if penalty == "none":
        return
    br, bc = np.cumsum([0, *sizes_r]), np.cumsum([0, *sizes_c])
    for p in range(len(sizes_r)):
        for q in range(len(sizes_c)):
            if div[p, q] != 1.0:
                scores[br[p]:br[p + 1], bc[q]:bc[q + 1]] /= div[p, q]


def network_score(scores: np.ndarray, matcher: MatchingStrategy) -> tuple[Directional, Directional]:
    """Both directions of the network score from a (penalised) score matrix (no tables)."""
    return _direction(scores, matcher, _NO_TABLE), _direction(scores.T, matcher, _NO_TABLE)


def _direction(scores: np.ndarray, matcher: MatchingStrategy, table: np.ndarray) -> Directional:
    match = matcher.match(scores)
    return Directional(_mean(match.score), np.asarray(match.partner), np.asarray(match.score, dtype=float),
                       table)


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else 0.0


def full_directions(sim: np.ndarray, sizes_r: Sequence[int], sizes_c: Sequence[int],
                    matcher: MatchingStrategy, penalty: str, absolute: bool,
                    columns: bool = True, tables: bool = True,
                    overwrite: bool = False) -> tuple[Directional, Directional | None]:
    """Rows -> columns (and columns -> rows when ``columns``) from the full similarity
    ``sim`` (n_rows, n_cols), NaN where undefined. One score copy (none with ``overwrite``:
    ``sim`` becomes the scores); penalised in place. ``tables=False`` skips the layer tables
    (empty arrays)."""
    scores = similarity_scores(sim, absolute, overwrite)
    br, bc = np.cumsum([0, *sizes_r]), np.cumsum([0, *sizes_c])
    single = len(sizes_r) == 1 and len(sizes_c) == 1  # the table is the network score itself
    if not tables or single:
        table_r, table_c = _NO_TABLE, _NO_TABLE
    elif isinstance(matcher, MaxMatching) and min(*sizes_r, *sizes_c) > 0:
        table_r, table_c = _max_tables(scores, br, bc, columns)
    else:
        table_r, table_c = _tables(lambda p, q: scores[br[p]:br[p + 1], bc[q]:bc[q + 1]], matcher.match,
                                   matcher, sizes_r, sizes_c, columns)
    penalise_blocks(scores, sizes_r, sizes_c, penalty)
    rows, cols = _pair(lambda: matcher.match(scores), lambda: matcher.match(scores.T), scores.shape[1],
                       matcher, columns)
    return _finish(rows, cols, table_r, table_c, tables and single)


def tiled_directions(best: BlockBest, matcher: MatchingStrategy, penalty: str,
                     columns: bool = True, tables: bool = True) -> tuple[Directional, Directional | None]:
    """The same from the per-layer bests kept while walking the tiles."""
    cand = best.candidates(divisor(len(best.sizes_r), len(best.sizes_c), penalty))
    table_r, table_c = _tables(best.block, matcher.match_candidates, matcher, best.sizes_r, best.sizes_c,
                               columns) if tables else (_NO_TABLE,) * 2
    rows, cols = _pair(lambda: matcher.match_candidates(cand), lambda: matcher.match_candidates(cand.transpose()),
                       cand.shape[1], matcher, columns)
    return _finish(rows, cols, table_r, table_c, False)


def _pair(rows: Callable[[], Match], cols: Callable[[], Match], n_cols: int, matcher: MatchingStrategy,
          columns: bool) -> tuple[Match, Match | None]:
    """Both directions; a one-to-one strategy's second direction is its first, inverted."""
    first = rows()
    if not columns:
        return first, None
    return first, (_inverse(first, n_cols) if matcher.one_to_one else cols())


def _inverse(match: Match, n_cols: int) -> Match:
    partner, score = np.full(n_cols, -1, dtype=np.int64), np.zeros(n_cols)
    has = np.flatnonzero(match.partner >= 0)
    partner[match.partner[has]] = has
    score[match.partner[has]] = match.score[has]
    return Match(partner, score)


def _tables(block: Callable[[int, int], Any], match: Callable[[Any], Match], matcher: MatchingStrategy,
            sizes_r: Sequence[int], sizes_c: Sequence[int], columns: bool) -> tuple[np.ndarray, np.ndarray]:
    """Layer tables of both directions: the strategy within each pair of layers, no penalty."""
    table_r = np.zeros((len(sizes_r), len(sizes_c)))
    table_c = np.zeros((len(sizes_c), len(sizes_r))) if columns else _NO_TABLE
    for p in range(len(sizes_r)):
        for q in range(len(sizes_c)):
            b = block(p, q)
            rows, cols = _pair(partial(match, b), partial(_match_transposed, match, b), sizes_c[q], matcher,
                               columns)
            table_r[p, q] = _mean(rows.score)
            if cols is not None:
                table_c[q, p] = _mean(cols.score)
    return table_r, table_c


def _max_tables(scores: np.ndarray, br: np.ndarray, bc: np.ndarray,
                columns: bool) -> tuple[np.ndarray, np.ndarray]:
    """The layer tables of ``max`` (each block's mean of row maxima, and of column maxima)
    in two passes over ``scores`` with maximum.reduceat, instead of two matchings per block."""
    table_r = np.array([np.maximum.reduceat(scores[br[p]:br[p + 1]], bc[:-1], axis=1).mean(axis=0)
                        for p in range(len(br) - 1)])
    if not columns:
        return table_r, _NO_TABLE
    best = np.maximum.reduceat(scores, br[:-1], axis=0)  # (row layers, n_cols)
    table_c = np.add.reduceat(best, bc[:-1], axis=1).T / np.diff(bc)[:, None]
    return table_r, table_c


def _match_transposed(match: Callable[[Any], Match], block: Any) -> Match:
    return match(block.transpose())


def _finish(rows: Match, cols: Match | None, table_r: np.ndarray, table_c: np.ndarray,
            single: bool) -> tuple[Directional, Directional | None]:
    ab = _as_directional(rows, np.array([[_mean(rows.score)]]) if single else table_r)
    if cols is None:
        return ab, None
    return ab, _as_directional(cols, np.array([[_mean(cols.score)]]) if single else table_c)


def _as_directional(match: Match, table: np.ndarray) -> Directional:
    return Directional(_mean(match.score), np.asarray(match.partner), np.asarray(match.score, dtype=float), table)


def layer_table(scores: np.ndarray, sizes_a: Sequence[int], sizes_b: Sequence[int],
                matcher: MatchingStrategy) -> np.ndarray:
    """(layers_a, layers_b): mean best-match score of layer a's neurons within layer b."""
    bounds_a, bounds_b = np.cumsum([0, *sizes_a]), np.cumsum([0, *sizes_b])
    table = np.zeros((len(sizes_a), len(sizes_b)))
    for i in range(len(sizes_a)):
        for j in range(len(sizes_b)):
            block = scores[bounds_a[i]:bounds_a[i + 1], bounds_b[j]:bounds_b[j + 1]]
            table[i, j] = _mean(matcher.match(block).score)
    return table


def layer_directions(table: np.ndarray, matcher: MatchingStrategy, penalty: str,
                     absolute: bool) -> tuple[Directional, Directional]:
    """A layer-level metric's network score: layers play the part of neurons, with their
    index among the selected layers as depth. The tables are the metric's own."""
    scores = similarity_scores(table, absolute)
    scores /= divisor(scores.shape[0], scores.shape[1], penalty)
    return _direction(scores, matcher, table), _direction(scores.T, matcher, table.T)

