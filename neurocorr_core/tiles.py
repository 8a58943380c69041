"""The similarity in tiles: bounded memory for layers too wide to hold all n_a x n_b scores.

When a memory budget is set and the full score matrix does not fit, the core asks the
metric for one tile of neurons at a time (:meth:`Metric.tile`), never spanning two layers,
and keeps only what matching needs: for every neuron and every layer of the other model,
its ``k`` best partners in that layer (``k = MatchingStrategy.candidates``: 1 for ``max``
and ``mutual``, ``top_k`` for ``hungarian``). The depth penalty is constant within a pair
of layers, so the penalised best matches are found among these per-layer bests exactly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .errors import NeurocorrError
from .interfaces import Candidates

#: Bytes per pair of neurons when the full score matrix is held: the metric's float64
#: state, its float64 result, the score copy and a matcher's working copy.
UNTILED_BYTES_PER_PAIR = 32
#: Smallest tile edge the core will use (smaller layers use their own size).
MIN_EDGE = 64
_STRIP = 16  # rows per strip when finding each column's best (see column_best)

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_budget(budget: int | float | str | None) -> int | None:
    """Bytes from ``4000000000``, ``"4GB"``, ``"512MB"`` or ``"1.5GiB"`` (None: no budget)."""
    if budget is None:
        return None
    if isinstance(budget, (int, float)) and not isinstance(budget, bool):
        value = float(budget)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(budget))
        if not match or match.group(2).lower() not in _UNITS:
            raise NeurocorrError(f"memory budget {budget!r} is not a size; write e.g. 4GB, 512MB, "
                                 "1.5GiB or a number of bytes")
        value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if value <= 0:
        raise NeurocorrError(f"memory budget must be positive, got {budget!r}")
    return int(value)


def human(n: float, up: bool = False) -> str:
    """``1536000000`` -> ``'1.54 GB'`` (three digits; rounded up with ``up``, for minimums)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            value = n / size
            if up:
                step = 10.0 ** (math.floor(math.log10(value)) - 2)
                value = math.ceil(value / step - 1e-9) * step
            return f"{value:.3g} {unit}"
    return f"{int(n)} B"


def untiled_bytes(n_rows: int, n_cols: int) -> int:
    return UNTILED_BYTES_PER_PAIR * n_rows * n_cols


@dataclass(frozen=True)
class TilePlan:
    """Tile edges (rows of A, columns of B) and the memory accounting behind them."""

    rows: int
    cols: int
    fixed_bytes: int
    tile_bytes: int
    bands: int = 0  #: passes over the probe, one per band of ``rows`` rows (:mod:`~neurocorr_core.bands`); 0: one

    def to_dict(self) -> dict[str, int]:
        return {"rows": self.rows, "cols": self.cols, "fixed_bytes": self.fixed_bytes,
                "tile_bytes": self.tile_bytes, **({"bands": self.bands} if self.bands else {})}


def element_bytes(k: int) -> int:
    """Working bytes per tile entry: the tile itself (float64 at most), and for ``k > 1`` a
    transposed copy and argpartition's indices."""
    return 12 if k == 1 else 40


def reducer_bytes(sizes_r: Sequence[int], sizes_c: Sequence[int], k: int, columns: bool = True) -> int:
    """The per-layer best state (value float64 + index int64 per entry: 16 bytes) and, once
    the tiles are done, the candidates built from it with their sorting and the matcher's
    sparse graph (measured at about 110 bytes per entry with tracemalloc)."""
    entries = sum(sizes_r) * len(sizes_c) + (sum(sizes_c) * len(sizes_r) if columns else 0)
    return entries * k * (16 + 128)


def _tile_cost(k: int, samples: int, tr: int, tc: int) -> int:
    """Bytes of one tr x tc tile and of the metric's standardised blocks for it."""
    return element_bytes(k) * tr * tc + 16 * samples * (tr + tc)


def tile_minimum(sizes_r: Sequence[int], sizes_c: Sequence[int], *, k: int, samples: int, fixed: int,
                 columns: bool = True) -> int:
    """The least budget that tiles can work in: ``fixed`` bytes, the per-neuron best state
    and one ``MIN_EDGE`` x ``MIN_EDGE`` tile (or smaller layers' own size)."""
    least_r, least_c = min(max(sizes_r, default=0), MIN_EDGE), min(max(sizes_c, default=0), MIN_EDGE)
    return fixed + reducer_bytes(sizes_r, sizes_c, k, columns) + _tile_cost(k, samples, least_r, least_c)


def too_small(budget: int, minimum: int, what: str) -> NeurocorrError:
    """The error for a budget below ``minimum``, which says the minimum and the ways out."""
    return NeurocorrError(
        f"memory budget {human(budget)} ({budget} bytes) is too small for even one tile: {what} needs at "
        f"least {minimum} bytes. Raise memory_budget (--memory-budget) to at least "
        f"{human(minimum, up=True)}, or sample neurons (sample_neurons) or probe samples (sample_probe)")


def plan_tiles(sizes_r: Sequence[int], sizes_c: Sequence[int], *, k: int, samples: int,
               fixed: int, budget: int, columns: bool = True) -> TilePlan:
    """The largest square-ish tiles that fit ``budget`` after ``fixed`` bytes and the
    per-neuron best state; an error that says the minimum when not even a ``MIN_EDGE`` tile fits."""
    minimum = tile_minimum(sizes_r, sizes_c, k=k, samples=samples, fixed=fixed, columns=columns)
    if minimum > budget:
        raise too_small(budget, minimum, f"comparing {sum(sizes_r)} x {sum(sizes_c)} neurons over "
                                         f"{samples} samples in tiles")
    fixed += reducer_bytes(sizes_r, sizes_c, k, columns)
    max_r, max_c = max(sizes_r, default=0), max(sizes_c, default=0)

    def cost(tr: int, tc: int) -> int:
        return _tile_cost(k, samples, tr, tc)

    free = budget - fixed
    edge = max(min(max_r, MIN_EDGE), min(max_c, MIN_EDGE), 1)
    while cost(min(edge * 2, max_r), min(edge * 2, max_c)) <= free and (edge < max_r or edge < max_c):
        edge *= 2
    tr, tc = min(edge, max_r), min(edge, max_c)
    while tc < max_c and cost(tr, min(tc * 2, max_c)) <= free:  # widen along a wider layer
        tc = min(tc * 2, max_c)
    while tr < max_r and cost(min(tr * 2, max_r), tc) <= free:
        tr = min(tr * 2, max_r)
    return TilePlan(max(tr, 1), max(tc, 1), fixed, cost(tr, tc))


class BlockBest:
    """For every row neuron and every column layer (and every column neuron and every row
    layer) the ``k`` largest scores and their indices, fed one tile at a time.

    With ``k == 1`` ties go to the lowest index, as with numpy.argmax: tiles arrive in
    increasing index order and only a strictly larger score replaces the kept one.
    """

    def __init__(self, sizes_r: Sequence[int], sizes_c: Sequence[int], k: int, columns: bool = True) -> None:
        self.sizes_r, self.sizes_c, self.k, self.columns = list(sizes_r), list(sizes_c), k, columns
        self.start_r = np.cumsum([0, *sizes_r])
        self.start_c = np.cumsum([0, *sizes_c])
        n_r, n_c = sum(sizes_r), sum(sizes_c)
        self.row_val = np.full((n_r, len(sizes_c), k), -np.inf)
        self.row_idx = np.full((n_r, len(sizes_c), k), -1, dtype=np.int64)
        cols = n_c if columns else 0
        self.col_val = np.full((cols, len(sizes_r), k), -np.inf)
        self.col_idx = np.full((cols, len(sizes_r), k), -1, dtype=np.int64)

    def add(self, p: int, q: int, r0: int, c0: int, tile: np.ndarray) -> None:
        """A tile of finite scores of rows ``r0..`` (in row layer p) x columns ``c0..`` (in
        column layer q); global indices."""
        r1, c1 = r0 + tile.shape[0], c0 + tile.shape[1]
        _keep(self.row_val[r0:r1, q], self.row_idx[r0:r1, q], tile, c0, self.k)
        if self.columns:
            if self.k == 1:
                idx, val = column_best(tile)
                _keep(self.col_val[c0:c1, p], self.col_idx[c0:c1, p], None, r0, 1, (idx, val))
            else:
                _keep(self.col_val[c0:c1, p], self.col_idx[c0:c1, p], np.ascontiguousarray(tile.T), r0, self.k)

    def candidates(self, divisor: np.ndarray) -> Candidates:
        """All kept entries with scores divided by ``divisor[row layer, column layer]``
        (the depth penalty; ones for none), in global indices."""
        layer_r = np.repeat(np.arange(len(self.sizes_r)), self.sizes_r)
        layer_c = np.repeat(np.arange(len(self.sizes_c)), self.sizes_c)
        n_r, n_c = int(self.start_r[-1]), int(self.start_c[-1])
        parts = []
        rows = np.broadcast_to(np.arange(n_r)[:, None, None], self.row_idx.shape)
        q = np.broadcast_to(np.arange(len(self.sizes_c))[None, :, None], self.row_idx.shape)
        ok = self.row_idx >= 0
        parts.append((rows[ok], self.row_idx[ok], self.row_val[ok] / divisor[layer_r[rows[ok]], q[ok]]))
        if self.columns:
            cols = np.broadcast_to(np.arange(n_c)[:, None, None], self.col_idx.shape)
            p = np.broadcast_to(np.arange(len(self.sizes_r))[None, :, None], self.col_idx.shape)
            ok = self.col_idx >= 0
            parts.append((self.col_idx[ok], cols[ok], self.col_val[ok] / divisor[p[ok], layer_c[cols[ok]]]))
        return _unique(parts, (n_r, n_c))

    def block(self, p: int, q: int) -> Candidates:
        """The kept entries of row layer p x column layer q, unpenalised, in the block's
        own indices (for the layer x layer table)."""
        r0, r1, c0, c1 = self.start_r[p], self.start_r[p + 1], self.start_c[q], self.start_c[q + 1]
        parts = []
        idx, val = self.row_idx[r0:r1, q], self.row_val[r0:r1, q]
        ok = idx >= 0
        parts.append((np.nonzero(ok)[0], idx[ok] - c0, val[ok]))
        if self.columns:
            idx, val = self.col_idx[c0:c1, p], self.col_val[c0:c1, p]
            ok = idx >= 0
            parts.append((idx[ok] - r0, np.nonzero(ok)[0], val[ok]))
        return _unique(parts, (int(r1 - r0), int(c1 - c0)))


def _keep(vals: np.ndarray, idx: np.ndarray, tile: np.ndarray | None, offset: int, k: int,
          best: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Merge each row of ``tile`` (or the given row bests) into the kept (rows, k) state."""
    if k == 1:
        if best is None:
            assert tile is not None
            where = np.argmax(tile, axis=1)
            best = where, tile[np.arange(tile.shape[0]), where]
        where, value = best
        better = value > vals[:, 0]
        vals[better, 0] = value[better]
        idx[better, 0] = where[better] + offset
        return
    assert tile is not None
    width = tile.shape[1]
    kk = min(k, width)
    top = np.argpartition(tile, width - kk, axis=1)[:, width - kk:]
    all_val = np.concatenate([vals, np.take_along_axis(tile, top, axis=1)], axis=1)
    all_idx = np.concatenate([idx, top + offset], axis=1)
    keep = np.argpartition(all_val, all_val.shape[1] - k, axis=1)[:, all_val.shape[1] - k:]
    vals[...] = np.take_along_axis(all_val, keep, axis=1)
    idx[...] = np.take_along_axis(all_idx, keep, axis=1)


def column_best(tile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's largest value and its first row. numpy's argmax along axis 0 of a
    C-ordered array is ~50x slower than along axis 1, so reduce strips of rows with max
    (fast) and locate the row inside the winning strip only."""
    rows, cols = tile.shape
    best = np.full(cols, -np.inf, dtype=tile.dtype)
    strip = np.zeros(cols, dtype=np.int64)
    for start in range(0, rows, _STRIP):
        top = tile[start:start + _STRIP].max(axis=0)
        better = top > best
        np.copyto(best, top, where=better)
        strip[better] = start
    inside = np.minimum(strip[None, :] + np.arange(_STRIP)[:, None], rows - 1)
    where = strip + np.argmax(tile[inside, np.arange(cols)[None, :]], axis=0)
    return where, best.astype(np.float64)


def _unique(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], shape: tuple[int, int]) -> Candidates:
    rows = np.concatenate([p[0] for p in parts]).astype(np.int64)
    cols = np.concatenate([p[1] for p in parts]).astype(np.int64)
    values = np.concatenate([p[2] for p in parts]).astype(np.float64)
    _, first = np.unique(rows * max(shape[1], 1) + cols, return_index=True)
    return Candidates(rows[first], cols[first], values[first], shape)


class TileSource(Protocol):
    """What :func:`reduce_tiles` reads: the similarity one tile at a time (:meth:`Metric.tile`)."""

    def tile(self, rows: slice, cols: slice) -> np.ndarray: ...


def reduce_tiles(metric: TileSource, sizes_r: Sequence[int], sizes_c: Sequence[int], plan: TilePlan, *,
                 k: int, absolute: bool, dead_r: np.ndarray, dead_c: np.ndarray, columns: bool = True,
                 best: BlockBest | None = None, rows: tuple[int, int] | None = None) -> tuple[BlockBest, int]:
    """Walk every tile once; returns the kept bests and the number of tiles. Scores are |r|
    (or r) clipped to [-1, 1], 0 for constant neurons. ``best``: bests to add to; ``rows``: walk
    only the row span ``(start, stop)`` (a band).

    A tile is one product from the metric. Layers narrower than the tile edge share a tile
    with their neighbours (a span), which is then split at the layer edges for the bests:
    33 x 33 small layers cost a few hundred large GEMMs rather than 1,089 small ones."""
    best = BlockBest(sizes_r, sizes_c, k, columns) if best is None else best
    tiles = 0
    for r0, r1, layers_r in spans(sizes_r, plan.rows):
        if rows is not None and (r0, r1) != rows:
            continue
        for c0, c1, layers_c in spans(sizes_c, plan.cols):
            tile = _scores(metric.tile(slice(r0, r1), slice(c0, c1)), absolute, dead_r[r0:r1], dead_c[c0:c1])
            tiles += 1
            for p in layers_r:
                p0, p1 = max(r0, int(best.start_r[p])), min(r1, int(best.start_r[p + 1]))
                for q in layers_c:
                    q0, q1 = max(c0, int(best.start_c[q])), min(c1, int(best.start_c[q + 1]))
                    best.add(p, q, p0, q0, tile[p0 - r0:p1 - r0, q0 - c0:q1 - c0])
    return best, tiles


def spans(sizes: Sequence[int], edge: int) -> list[tuple[int, int, list[int]]]:
    """Index ranges ``(start, stop, layers in it)`` of at most ``edge`` neurons: a layer wider
    than ``edge`` in pieces of its own, consecutive narrower ones gathered into one range."""
    out: list[tuple[int, int, list[int]]] = []
    start = 0
    for layer, size in enumerate(sizes):
        stop = start + size
        if size > edge:
            out += [(s, min(s + edge, stop), [layer]) for s in range(start, stop, edge)]
        elif out and out[-1][1] == start and stop - out[-1][0] <= edge \
                and sizes[out[-1][2][-1]] <= edge:
            out[-1] = (out[-1][0], stop, [*out[-1][2], layer])
        elif size:
            out.append((start, stop, [layer]))
        start = stop
    return out


def _scores(tile: np.ndarray, absolute: bool, dead_r: np.ndarray, dead_c: np.ndarray) -> np.ndarray:
    """In place: |r| or r, clipped to [-1, 1] as the untiled path does, 0 where undefined."""
    if absolute:
        np.abs(tile, out=tile)
        np.minimum(tile, 1.0, out=tile)
    else:
        np.clip(tile, -1.0, 1.0, out=tile)
    if dead_r.any():
        tile[dead_r] = 0.0
    if dead_c.any():
        tile[:, dead_c] = 0.0
    return tile
