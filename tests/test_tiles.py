"""The similarity in tiles under a memory budget: the same best matches as the untiled
computation, Pearson tiles equal to numpy.corrcoef, memory within the budget (measured with
tracemalloc), and clear errors when the budget cannot work."""

import tracemalloc
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from neurocorr_core import Match, MatchingStrategy, Metric, NeurocorrError, compare, hookimpl
from neurocorr_core.matching import HungarianMatching
from neurocorr_core.score import tiled_directions
from neurocorr_core.tiles import BlockBest, TilePlan, column_best, parse_budget, reduce_tiles
from numpy_models import mlp

neurocorr_pearson = pytest.importorskip("neurocorr_pearson")


def test_parse_budget():
    assert parse_budget(None) is None
    assert parse_budget(1234) == 1234
    assert parse_budget("4GB") == 4 * 10**9
    assert parse_budget("512 MB") == 512 * 10**6
    assert parse_budget("1.5GiB") == int(1.5 * 2**30)
    assert parse_budget("64k") == 64000
    for bad in ("lots", "4 XB", "-3MB", 0):
        with pytest.raises(NeurocorrError, match="memory budget"):
            parse_budget(bad)


def test_column_best_is_argmax_with_lowest_row_on_ties():
    rng = np.random.default_rng(0)
    for rows in (1, 15, 16, 17, 50):
        tile = rng.integers(0, 4, size=(rows, 40)).astype(np.float32)  # many ties
        idx, val = column_best(tile)
        np.testing.assert_array_equal(idx, np.argmax(tile, axis=0))
        np.testing.assert_array_equal(val, tile.max(axis=0))


def test_block_best_keeps_k_largest_across_tiles():
    rng = np.random.default_rng(1)
    scores = rng.random((30, 50))
    best = BlockBest([30], [50], k=4)
    for r0 in range(0, 30, 7):
        for c0 in range(0, 50, 11):
            best.add(0, 0, r0, c0, scores[r0:r0 + 7, c0:c0 + 11].copy())
    top_rows, top_cols = np.argsort(-scores, axis=1)[:, :4], np.argsort(-scores, axis=0)[:4].T
    np.testing.assert_array_equal(np.sort(best.row_idx[:, 0], axis=1), np.sort(top_rows, axis=1))
    np.testing.assert_array_equal(np.sort(best.col_idx[:, 0], axis=1), np.sort(top_cols, axis=1))


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_pearson_tiles_equal_corrcoef(offset):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(90, 13)) * rng.uniform(0.01, 5, 13)
    y = np.tanh(x[:, :9] @ rng.normal(size=(9, 11))) + offset
    x += offset
    x[:, 4] = 3.0  # a constant neuron
    x, y = x.astype(np.float32), y.astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.corrcoef(x.astype(np.float64).T, y.astype(np.float64).T)[:13, 13:]
    metric = neurocorr_pearson.Pearson([5, 8], [11], tiled=True, samples=90)
    for start in range(0, 90, 32):
        metric.update(x[start:start + 32], y[start:start + 32])
    assert metric.count == 90
    dead_a, dead_b = metric.constant()
    assert dead_a.tolist() == [i == 4 for i in range(13)] and not dead_b.any()
    np.testing.assert_allclose(metric.tile(slice(2, 9), slice(3, 10))[np.arange(7) != 2],
                               ref[2:9, 3:10][np.arange(7) != 2], atol=2e-6)
    np.testing.assert_allclose(metric.compute(), ref, atol=2e-6, equal_nan=True)
    moments = neurocorr_pearson.Pearson([5, 8], [11])
    moments.update(x, y)
    np.testing.assert_allclose(moments.tile(slice(0, 13), slice(0, 11)), ref, atol=1e-6, equal_nan=True)


# -- tiled vs untiled through compare() -------------------------------------------------------
@pytest.fixture
def wide():
    probe = np.random.default_rng(3).normal(size=(50, 16)).astype(np.float32)
    return mlp(31, [300, 200, 160], dead=4), mlp(32, [260, 190]), probe


@pytest.mark.parametrize("matching", ["max", "mutual"])
@pytest.mark.parametrize("penalty", ["paper", "none"])
@pytest.mark.parametrize("absolute", [True, False])
def test_tiled_equals_untiled(pm, wide, matching, penalty, absolute):
    net_a, net_b, probe = wide
    kw = dict(matching=matching, depth_penalty=penalty, absolute=absolute, plugin_manager=pm)
    full = compare(net_a, net_b, probe, **kw)
    tiled = compare(net_a, net_b, probe, memory_budget="2MB", **kw)
    tiles = tiled.config["tiles"]["a"]
    assert full.config["tiles"] is None and tiles["count"] > 6  # several tiles per pair of layers
    np.testing.assert_array_equal(tiled.partner_a, full.partner_a)
    np.testing.assert_array_equal(tiled.partner_b, full.partner_b)
    assert tiled.score.a_to_b == pytest.approx(full.score.a_to_b, abs=1e-6)
    assert tiled.score.b_to_a == pytest.approx(full.score.b_to_a, abs=1e-6)
    np.testing.assert_allclose(tiled.layer_table, full.layer_table, atol=1e-6)
    np.testing.assert_allclose(tiled.layer_table_ba, full.layer_table_ba, atol=1e-6)
    assert tiled.matched_fraction == full.matched_fraction
    assert tiled.dead_neurons == full.dead_neurons and sum(full.dead_neurons["a"].values()) >= 4


def test_tiled_hungarian_with_every_candidate_is_the_optimum(pm, wide):
    """k as large as a layer keeps every entry: the sparse assignment is then exact."""
    net_a, net_b, probe = wide
    x = np.concatenate([net_a.run(probe)[f"act{i}"] for i in range(3)], axis=1)
    y = np.concatenate([net_b.run(probe)[f"act{i}"] for i in range(2)], axis=1)
    metric = neurocorr_pearson.Pearson([300, 200, 160], [260, 190], tiled=True, samples=50)
    metric.update(x, y)
    dead_a, dead_b = metric.constant()
    best, count = reduce_tiles(metric, [300, 200, 160], [260, 190], TilePlan(64, 96, 0, 0), k=300,
                               absolute=True, dead_r=dead_a, dead_c=dead_b)
    ab, ba = tiled_directions(best, HungarianMatching(top_k=300), "paper")
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(x.astype(np.float64).T, y.astype(np.float64).T)[:660, 660:]
    scores = np.nan_to_num(np.abs(r)) / (np.abs(np.repeat([0, 1, 2], [300, 200, 160])[:, None]
                                                  - np.repeat([0, 1], [260, 190])[None, :]) + 1)
    rows, cols = linear_sum_assignment(scores, maximize=True)
    assert count == (5 + 4 + 3) * (3 + 2)  # tiles of 64 x 96 in layers of 300, 200, 160 x 260, 190
    assert ab.score * 660 == pytest.approx(scores[rows, cols].sum(), abs=1e-4)
    assert ba.score * 450 == pytest.approx(scores[rows, cols].sum(), abs=1e-4)


def test_tiled_hungarian_top_k_is_close_below_the_optimum(pm, wide):
    net_a, net_b, probe = wide
    kw = dict(matching="hungarian", constant_neurons="zero", plugin_manager=pm)
    full = compare(net_a, net_b, probe, **kw)
    tiled = compare(net_a, net_b, probe, memory_budget="8MB", matching_options={"top_k": 8}, **kw)
    assert tiled.config["tiles"] is not None
    assert tiled.score.b_to_a <= full.score.b_to_a + 1e-6
    assert tiled.score.b_to_a >= full.score.b_to_a - 0.01
    assert tiled.matched_fraction == full.matched_fraction


@pytest.mark.parametrize(("matching", "budget"), [("max", 6_000_000), ("mutual", 6_000_000), ("hungarian", 26_000_000)])
def test_memory_stays_within_the_budget(pm, matching, budget):
    import scipy.sparse.csgraph  # noqa: F401 - module objects would count as traced memory

    probe = np.random.default_rng(4).normal(size=(40, 16)).astype(np.float32)
    net_a, net_b = mlp(33, [1500, 1000]), mlp(34, [1200, 900])
    compare(mlp(1, [3]), mlp(2, [3]), probe, matching=matching, constant_neurons="zero",
            memory_budget="1GB", plugin_manager=pm)  # warm up imports and caches
    tracemalloc.start()
    try:
        result = compare(net_a, net_b, probe, matching=matching, memory_budget=budget,
                         constant_neurons="zero", plugin_manager=pm)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the untiled computation would hold 32 bytes x 2500 x 2100 = 168 MB
    assert result.config["tiles"]["a"]["count"] > 4
    assert peak <= budget, f"peak {peak} bytes over the budget {budget}"


def test_budget_too_small_states_the_minimum(pm, wide):
    net_a, net_b, probe = wide
    with pytest.raises(NeurocorrError, match=r"memory budget 100 kB \(100000 bytes\) is too small for even "
                       r"one tile: comparing 660 x 450 neurons over 50 samples in tiles needs at least (\d+) "
                       r"bytes") as err:
        compare(net_a, net_b, probe, memory_budget="100kB", plugin_manager=pm)
    minimum = int(err.value.args[0].split("needs at least ")[1].split(" bytes")[0])
    assert "Raise memory_budget (--memory-budget) to at least" in str(err.value)
    compare(net_a, net_b, probe, memory_budget=minimum, plugin_manager=pm)  # the minimum works
    with pytest.raises(NeurocorrError, match="too small for even one tile"):
        compare(net_a, net_b, probe, memory_budget=minimum - 1, plugin_manager=pm)
    # small layers: the full matrix needs less than tiles would, and that is the minimum stated
    small_a, small_b = mlp(1, [4]), mlp(2, [5])
    with pytest.raises(NeurocorrError, match=r"comparing 4 x 5 neurons over 50 samples needs at least 640 bytes"):
        compare(small_a, small_b, probe, memory_budget=100, plugin_manager=pm)
    assert compare(small_a, small_b, probe, memory_budget=640, plugin_manager=pm).config["tiles"] is None


class Untileable(Metric):
    name = "untileable"

    def update(self, x, y): ...
    def merge(self, other): ...
    def compute(self): return np.zeros((sum(self.sizes_a), sum(self.sizes_b)))
    def constant(self): return np.zeros(sum(self.sizes_a), bool), np.zeros(sum(self.sizes_b), bool)


class FullOnly(MatchingStrategy):
    name = "full-only"

    def match(self, scores):
        return Match(np.zeros(scores.shape[0], dtype=np.int64), scores[:, 0])


@hookimpl
def neurocorr_similarity_metrics():
    return [Untileable]


@hookimpl
def neurocorr_matching_strategies():
    return [FullOnly]


def test_what_cannot_be_tiled_says_so(pm, wide):
    pm.register(SimpleNamespace(neurocorr_similarity_metrics=neurocorr_similarity_metrics,
                                neurocorr_matching_strategies=neurocorr_matching_strategies), "tile-test")
    net_a, net_b, probe = wide
    with pytest.raises(NeurocorrError, match=r"the 660 x 450 similarity needs about 9.5 MB, more than the memory "
                       r"budget 1 MB, and metric 'untileable' cannot work in tiles.*metric='pearson'"):
        compare(net_a, net_b, probe, metric="untileable", memory_budget="1MB", plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="matching 'full-only' needs the full matrix"):
        compare(net_a, net_b, probe, matching="full-only", memory_budget="1MB", plugin_manager=pm)
    # a budget the full matrix fits needs no tiles, whatever the metric
    assert compare(net_a, net_b, probe, metric="untileable", memory_budget="1GB",
                   plugin_manager=pm).config["tiles"] is None


class BudgetAware(Untileable):
    name = "budget-aware"
    takes_memory_budget = True
    seen: ClassVar[list] = []

    def __init__(self, sizes_a, sizes_b, *, memory_budget=None, **options):
        super().__init__(sizes_a, sizes_b, **options)
        type(self).seen.append(memory_budget)


class BudgetUndeclared(BudgetAware):
    """Names ``memory_budget`` in its constructor but does not declare ``takes_memory_budget``."""

    name = "budget-undeclared"
    takes_memory_budget = False
    seen: ClassVar[list] = []


def test_the_budget_reaches_metrics_that_declare_it(pm, wide):
    """Spearman spills to disk beyond a budget: a metric that declares ``takes_memory_budget``
    gets the comparison's budget, in bytes (unless its options give one); others never see the
    keyword, even one whose constructor names it."""
    metrics = [BudgetAware, BudgetUndeclared, Untileable]
    pm.register(SimpleNamespace(neurocorr_similarity_metrics=hookimpl(lambda: metrics)), "budget-test")
    net_a, net_b, probe = wide
    compare(net_a, net_b, probe, metric="budget-aware", memory_budget="2GB", plugin_manager=pm)
    compare(net_a, net_b, probe, metric="budget-aware", plugin_manager=pm)
    compare(net_a, net_b, probe, metric="budget-aware", memory_budget="2GB",
            metric_options={"memory_budget": 123}, plugin_manager=pm)
    assert BudgetAware.seen[-3:] == [2_000_000_000, None, 123]
    compare(net_a, net_b, probe, metric="budget-undeclared", memory_budget="2GB", plugin_manager=pm)
    assert BudgetUndeclared.seen[-1:] == [None]
    result = compare(net_a, net_b, probe, metric="untileable", memory_budget="2GB", plugin_manager=pm)
    assert result.config["metric_options"] == {}
