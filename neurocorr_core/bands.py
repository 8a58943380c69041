"""Bands: a similarity too wide to hold, over more rows than tiles can keep, in bounded memory.

Tiles (:mod:`~neurocorr_core.tiles`) keep every row of activations: at 10^6 tokens x 2 x 36,864
MLP neurons that is 295 GB. Bands keep none: the probe is run once per band of row neurons, the
metric streams its state over the band's rows x all columns (Pearson's co-moments: float64, 8
bytes a pair, and CoMoments' float32 chunk of rows), and the band's tiles are reduced into the
per-layer bests tiles keep (:class:`~neurocorr_core.tiles.BlockBest`). Memory: the budget,
whatever the number of rows; time: two forward passes per band plus the GEMMs of one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .backend import PANEL_ELEMENTS, SMALL_PRODUCT, SMALL_ROWS
from .checks import call_metric, checked_constant, checked_tile
from .errors import NeurocorrError
from .interfaces import Metric
from .stats import chunk_rows
from .tiles import MIN_EDGE, BlockBest, TilePlan, element_bytes, reduce_tiles, spans


@dataclass(frozen=True)
class Band:
    """Rows ``start:stop`` of the plan's part ``part``, fed in one pass over the probe; ``sizes``:
    the pieces of layers in those rows (the band metric's row layers)."""

    part: int
    start: int
    stop: int
    sizes: tuple[int, ...]


def band_bytes(rows: int, cols: int, k: int, tile_cols: int) -> int:
    """A band's streamed state (float64 pairs, a float32 chunk of ``chunk_rows`` samples, per-neuron
    vectors), its GEMM's float32 product panel (a small product: float64 copies of the samples) and
    one rows x tile_cols tile with its scaling."""
    pairs, width = rows * cols, rows + cols
    product = 4 * min(pairs, PANEL_ELEMENTS) if pairs > SMALL_PRODUCT else 8 * SMALL_ROWS * width
    chunk, tile = 4 * chunk_rows(rows, cols) * width, (element_bytes(k) + 8) * rows * tile_cols
    return 8 * pairs + product + chunk + 64 * width + tile


def _tile_cols(sizes_c: Sequence[int], k: int) -> int:
    # a tile is a scaled slice of the state: a fifth of it (k=1) is plenty, and it never spans a layer
    return min(max(sizes_c, default=1), max(MIN_EDGE, 2 * sum(sizes_c) // (element_bytes(k) + 8)))


def least_rows(sizes_r: Sequence[int], sizes_c: Sequence[int]) -> int:
    # MIN_EDGE rows, and enough for a float32 product: a small one's float64 copies cost more
    return min(sum(sizes_r), max(MIN_EDGE, SMALL_PRODUCT // max(sum(sizes_c), 1) + 1))


def band_minimum(sizes_r: Sequence[int], sizes_c: Sequence[int], k: int, fixed: int) -> int:
    """The least budget bands work in: ``fixed`` bytes and a band of :func:`least_rows` rows."""
    return fixed + band_bytes(least_rows(sizes_r, sizes_c), sum(sizes_c), k, _tile_cols(sizes_c, k))


def plan_bands(sizes_r: Sequence[int], sizes_c: Sequence[int], *, k: int, fixed: int, budget: int) -> TilePlan:
    """The widest bands (``TilePlan.rows``) that fit ``budget`` after ``fixed`` bytes; the caller
    checked :func:`band_minimum`."""
    n_c, tc = sum(sizes_c), _tile_cols(sizes_c, k)
    lo, hi = least_rows(sizes_r, sizes_c), sum(sizes_r)
    while lo < hi:  # bisect: the bytes grow with the rows
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fixed + band_bytes(mid, n_c, k, tc) <= budget else (lo, mid - 1)
    return TilePlan(lo, tc, fixed, band_bytes(lo, n_c, k, tc), bands=len(spans(sizes_r, lo)))


def bands_of(sizes_r: Sequence[int], plan: TilePlan, part: int) -> list[Band]:
    edges = np.cumsum([0, *sizes_r])
    return [Band(part, r0, r1, tuple(int(s) for s in np.diff(np.clip(edges, r0, r1)) if s))
            for r0, r1, _ in spans(sizes_r, plan.rows)]


class CheckedTiles:
    """A metric's tiles, checked against the Metric contract as they come (what
    :func:`~neurocorr_core.tiles.reduce_tiles` reads); ``shift``: the metric's first row."""

    def __init__(self, metric: Metric, dead_r: np.ndarray, dead_c: np.ndarray, shift: int = 0) -> None:
        self.metric, self.dead_r, self.dead_c, self.shift = metric, dead_r, dead_c, shift

    def tile(self, rows: slice, cols: slice) -> np.ndarray:
        rows = slice(rows.start - self.shift, rows.stop - self.shift)
        values = call_metric(self.metric, "tile", self.metric.tile, rows, cols)
        return checked_tile(self.metric, values, rows, cols, self.dead_r[rows], self.dead_c[cols])


class Banded:
    """A banded part's per-layer bests, filled one band (one pass over the probe) at a time: what
    :meth:`~neurocorr_core.pipeline.Plan.finish` reads in place of the part's metric."""

    level = "neuron"

    def __init__(self, sizes_r: Sequence[int], sizes_c: Sequence[int], plan: TilePlan, k: int,
                 columns: bool) -> None:
        self.sizes_r, self.sizes_c, self.plan, self.k = list(sizes_r), list(sizes_c), plan, k
        self.best = BlockBest(sizes_r, sizes_c, k, columns)
        self.dead_r = np.zeros(sum(sizes_r), dtype=bool)
        self.dead_c: np.ndarray | None = None
        self.count, self.tiles, self.passes = 0, 0, 0

    def constant(self) -> tuple[np.ndarray, np.ndarray | None]:
        return self.dead_r, self.dead_c

    def add(self, band: Band, metric: Metric, absolute: bool, total: int) -> None:
        """Reduce the band's fed ``metric`` (pass ``passes + 1`` of ``total``) into the bests."""
        dead_r, dead_c = checked_constant(metric, band.sizes, self.sizes_c)
        self.passes += 1
        if self.dead_c is not None and (metric.count != self.count or not np.array_equal(dead_c, self.dead_c)):
            what = (f"{metric.count} rows, the first gave {self.count}" if metric.count != self.count
                    else "other constant neurons of the other model than the first")
            raise NeurocorrError(
                f"pass {self.passes} of {total} over the probe gave {what}: a comparison in bands runs the "
                "models over the probe once per band of neurons, so the probe must give the same samples on "
                "every pass and the models the same outputs. Give the probe as an array or a .npy file (not a "
                "stream read once), put the models in inference mode (no dropout), or raise memory_budget so "
                "that tiles keep the rows in one pass")
        self.count, self.dead_c = metric.count, dead_c
        self.dead_r[band.start:band.stop] = dead_r
        _, tiles = reduce_tiles(CheckedTiles(metric, dead_r, dead_c, band.start), self.sizes_r, self.sizes_c,
                                self.plan, k=self.k, absolute=absolute, dead_r=self.dead_r, dead_c=dead_c,
                                columns=self.best.columns, best=self.best, rows=(band.start, band.stop))
        self.tiles += tiles

