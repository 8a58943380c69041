"""Tiles that span several narrow layers (the per-layer bests equal a numpy reference), and
tiles chosen without a budget for a large similarity over few samples."""

import numpy as np
import pytest

from neurocorr_core import compare, pipeline
from neurocorr_core.interfaces import LayerInfo
from neurocorr_core.matching import HungarianMatching, MaxMatching, MutualMatching
from neurocorr_core.tiles import TilePlan, reduce_tiles, spans
from numpy_models import mlp

neurocorr_pearson = pytest.importorskip("neurocorr_pearson")

SIZES_R, SIZES_C = [20, 30, 10, 150, 0, 5], [40, 50, 8, 100, 3]


def test_spans_gather_narrow_layers_and_cut_wide_ones():
    assert spans([20, 30, 10, 150, 0, 5], 64) == [(0, 60, [0, 1, 2]), (60, 124, [3]), (124, 188, [3]),
                                                    (188, 210, [3]), (210, 215, [5])]
    assert spans([64, 1, 64], 64) == [(0, 64, [0]), (64, 65, [1]), (65, 129, [2])]
    assert spans([3, 3, 3], 10) == [(0, 9, [0, 1, 2])]


def reference(x, y, k):
    """Per (row, column layer) and (column, row layer) the k largest |r| from np.corrcoef."""
    n = x.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.abs(np.corrcoef(x.astype(np.float64).T, y.astype(np.float64).T)[:n, n:])
    r = np.minimum(np.nan_to_num(r), 1.0)
    er, ec = np.cumsum([0, *SIZES_R]), np.cumsum([0, *SIZES_C])
    rows = [[np.sort(r[i, ec[q]:ec[q + 1]])[::-1][:k] for q in range(len(SIZES_C))] for i in range(n)]
    cols = [[np.sort(r[er[p]:er[p + 1], j])[::-1][:k] for p in range(len(SIZES_R))] for j in range(r.shape[1])]
    return r, rows, cols


@pytest.mark.parametrize("k", [1, 3])
def test_spanning_tiles_keep_the_same_bests_as_numpy(k):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(60, sum(SIZES_R))).astype(np.float32)
    y = (0.5 * x[:, :sum(SIZES_C)] + rng.normal(size=(60, sum(SIZES_C)))).astype(np.float32)
    x[:, 7] = 2.0  # a constant neuron scores 0
    metric = neurocorr_pearson.Pearson(SIZES_R, SIZES_C, tiled=True, samples=60)
    metric.update(x, y)
    dead_r, dead_c = metric.constant()
    best, count = reduce_tiles(metric, SIZES_R, SIZES_C, TilePlan(64, 96, 0, 0), k=k, absolute=True,
                               dead_r=dead_r, dead_c=dead_c)
    assert count == 5 * 5  # rows: [0, 1, 2], 3 in three, [5]; columns: [0, 1], [2], 3 in two, [4]
    r, rows, cols = reference(x, y, k)
    for i in range(r.shape[0]):
        for q, want in enumerate(rows[i]):
            got = np.sort(best.row_val[i, q][best.row_idx[i, q] >= 0])[::-1]
            np.testing.assert_allclose(got, want, atol=2e-6, err_msg=f"row {i} layer {q}")
            picked = best.row_idx[i, q][best.row_idx[i, q] >= 0]
            np.testing.assert_allclose(r[i, picked], best.row_val[i, q][best.row_idx[i, q] >= 0], atol=2e-6)
    for j in range(r.shape[1]):
        for p, want in enumerate(cols[j]):
            got = np.sort(best.col_val[j, p][best.col_idx[j, p] >= 0])[::-1]
            np.testing.assert_allclose(got, want, atol=2e-6, err_msg=f"column {j} layer {p}")
            picked = best.col_idx[j, p][best.col_idx[j, p] >= 0]
            np.testing.assert_allclose(r[picked, j], best.col_val[j, p][best.col_idx[j, p] >= 0], atol=2e-6)


def planned(sizes_a, sizes_b, samples, matcher, keep=False, budget=None):
    pearson = neurocorr_pearson.Pearson
    side = [pipeline.Side(tag, [LayerInfo(f"{tag}{i}", (n,), i, "activation", "Relu") for i, n in enumerate(sizes)],
                          list(sizes)) for tag, sizes in (("a", sizes_a), ("b", sizes_b))]
    plan = pipeline.build_plan(pearson, matcher, side[0], side[1], samples=samples, constant="zero", penalty="none",
                               absolute=True)
    plan.fit(budget, keep)
    return plan.parts[0].tiles


def test_tiles_chosen_without_budget_only_where_they_are_exact_and_lean():
    efficientnet = [32, 32, 96, 96] + [144] * 4 + [240] * 4 + [480] * 6 + [672] * 6 + [1152] * 8 + [1280]
    assert planned(efficientnet, efficientnet, 1024, MaxMatching()) is not None  # 11.8 GB in full
    assert planned(efficientnet, efficientnet, 1024, MutualMatching()) is not None
    assert planned(efficientnet, efficientnet, 1024, HungarianMatching()) is None  # top_k: approximate
    assert planned(efficientnet, efficientnet, 1024, MaxMatching(), keep=True) is None
    assert planned(efficientnet, efficientnet, 100_000, MaxMatching()) is None  # the activations: 31 GB
    assert planned([4096], [4096], 50_000, MaxMatching()) is None  # 537 MB in full: small enough
    assert planned([300], [200], 50, MaxMatching(), budget=10**9) is None  # a budget decides as before


def test_automatic_tiles_give_the_untiled_matches(pm, monkeypatch):
    probe = np.random.default_rng(3).normal(size=(50, 16)).astype(np.float32)
    net_a, net_b = mlp(31, [300, 200, 160], dead=4), mlp(32, [260, 190])
    for matching in ("max", "mutual"):
        full = compare(net_a, net_b, probe, matching=matching, plugin_manager=pm)
        monkeypatch.setattr(pipeline, "AUTO_TILES_BYTES", 1000)
        tiled = compare(net_a, net_b, probe, matching=matching, plugin_manager=pm)
        monkeypatch.undo()
        assert full.config["tiles"] is None and tiled.config["tiles"] is not None
        np.testing.assert_array_equal(tiled.partner_a, full.partner_a)
        np.testing.assert_array_equal(tiled.partner_b, full.partner_b)
        assert tiled.score.a_to_b == pytest.approx(full.score.a_to_b, abs=1e-6)
        assert tiled.score.b_to_a == pytest.approx(full.score.b_to_a, abs=1e-6)
        np.testing.assert_allclose(tiled.layer_table, full.layer_table, atol=1e-6)
