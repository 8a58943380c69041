"""Bands (neurocorr_core.bands): when tiles would keep more rows than the memory budget holds, the
probe is run once per band of A's neurons and each band's streamed state reduced into the per-layer
bests. The matches equal the untiled comparison's, memory stays within the budget (tracemalloc), and
a model whose outputs change between passes is refused with what to do."""

import tracemalloc

import numpy as np
import pytest

import neurocorr_core.backend
from neurocorr_core import NeurocorrError, compare
from neurocorr_core.bands import band_bytes, band_minimum, bands_of, least_rows, plan_bands
from neurocorr_core.compare import _side, _stream, open_model
from neurocorr_core.probe import Probe
from numpy_models import NumpyNet, mlp

pytest.importorskip("neurocorr_pearson")

BUDGET = 45 * 10**6  # the full matrices take 87 MB, tiles that keep 3,000 rows 79 MB


@pytest.fixture(scope="module")
def wide():
    probe = np.random.default_rng(7).normal(size=(3000, 16)).astype(np.float32)
    return mlp(11, [900, 800], dead=3), mlp(12, [850, 750]), probe


def test_plan_bands_fits_the_budget_and_covers_every_row():
    sizes_r, sizes_c = [600, 500], [550, 450]
    least = band_minimum(sizes_r, sizes_c, 1, 10**6)
    assert least == 10**6 + band_bytes(263, 1000, 1, 100)  # the least rows whose product is float32
    plan = plan_bands(sizes_r, sizes_c, k=1, fixed=10**6, budget=2 * least)
    assert 10**6 + band_bytes(plan.rows, 1000, 1, plan.cols) <= 2 * least < 10**6 + band_bytes(plan.rows + 1, 1000,
                                                                                                1, plan.cols)
    bands = bands_of(sizes_r, plan, 0)
    assert len(bands) == plan.bands > 1
    assert [b.start for b in bands[1:]] == [b.stop for b in bands[:-1]] and bands[-1].stop == 1100
    assert all(sum(b.sizes) == b.stop - b.start <= plan.rows for b in bands)


@pytest.mark.parametrize(("matching", "penalty"), [("max", "none"), ("max", "paper"), ("mutual", "paper")])
def test_bands_equal_the_untiled_comparison(pm, wide, matching, penalty, monkeypatch):
    # every product in float64: a band's float32 GEMM and the whole matrix's round differently
    # (1.3e-6 apart here, each as far from float64); the bands themselves must add nothing
    monkeypatch.setattr(neurocorr_core.backend, "SMALL_PRODUCT", 1 << 40)
    net_a, net_b, probe = wide
    kw = {"matching": matching, "depth_penalty": penalty, "constant_neurons": "zero", "plugin_manager": pm}
    full = compare(net_a, net_b, probe, **kw)
    calls = len(net_a.calls)
    banded = compare(net_a, net_b, probe, memory_budget=BUDGET, **kw)
    tiles = banded.config["tiles"]["a"]
    assert tiles["bands"] > 1 and full.config["tiles"] is None
    assert len(net_a.calls) - calls == 1 + tiles["bands"] * -(-3000 // 256)  # a listing, then a pass per band
    assert banded.samples == full.samples == 3000
    for side in ("a", "b"):
        np.testing.assert_allclose(getattr(banded, f"value_{side}"), getattr(full, f"value_{side}"), atol=1e-6)
        same = getattr(banded, f"partner_{side}") == getattr(full, f"partner_{side}")
        assert same.mean() > 0.999  # a tie within rounding may pick another partner
    for got, want in ((banded.score.a_to_b, full.score.a_to_b), (banded.score.b_to_a, full.score.b_to_a)):
        assert got == pytest.approx(want, abs=1e-6)
    np.testing.assert_allclose(banded.layer_table, full.layer_table, atol=1e-6)
    np.testing.assert_allclose(banded.layer_table_ba, full.layer_table_ba, atol=1e-6)
    assert banded.matched_fraction == pytest.approx(full.matched_fraction, abs=1e-3)


def _peak(run):
    tracemalloc.start()
    try:
        out = run()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_bands_stay_within_the_budget(pm, wide):
    """The budget bounds what the comparison keeps; one batch's activations (the models' outputs,
    their views side by side) come on top, as for every comparison: measured here as the peak of
    streaming the same batches through both models with no metric."""
    net_a, net_b, probe = wide
    compare(mlp(1, [3]), mlp(2, [3]), probe[:50], memory_budget="1GB", plugin_manager=pm)  # warm up
    prov_a, prov_b = open_model(net_a, pm=pm), open_model(net_b, pm=pm)
    sides = [(p, _side(p, net, None, Probe(probe, "p"), "channel")) for p, net in ((prov_a, net_a), (prov_b, net_b))]
    _, batch = _peak(lambda: [None for _ in _stream(*sides, Probe(probe, "p"), Probe(probe, "p"), "channel", 256)])
    result, peak = _peak(lambda: compare(net_a, net_b, probe, memory_budget=BUDGET, constant_neurons="zero",
                                         plugin_manager=pm))
    assert result.config["tiles"]["a"]["bands"] > 1
    assert peak <= BUDGET + batch, f"peak {peak} bytes over the budget {BUDGET} and a batch's {batch}"
    full = compare(net_a, net_b, probe, constant_neurons="zero", plugin_manager=pm)
    assert result.score.symmetric == pytest.approx(full.score.symmetric, abs=2e-6)  # float32 GEMMs


def test_a_model_that_changes_between_passes_is_refused(pm, wide):
    net_a, _, probe = wide
    fickle = mlp(12, [850, 750])
    steps = list(fickle.steps)
    name, op, fn = steps[1]

    def dies_later(x):  # from the second pass on, neuron 0 of act0 is constant
        out = fn(x)
        if len(fickle.calls) > 1 + -(-3000 // 256):
            out[:, 0] = 0.0
        return out
    steps[1] = (name, op, dies_later)
    model = NumpyNet(steps, fickle.input_shape)
    fickle.calls = model.calls
    with pytest.raises(NeurocorrError, match=r"pass 2 of \d+ over the probe gave other constant neurons.*"
                                             r"inference mode.*raise memory_budget"):
        compare(net_a, model, probe, memory_budget=BUDGET, constant_neurons="zero", plugin_manager=pm)


def test_bands_need_one_process_and_say_the_least_budget(pm, wide):
    net_a, net_b, probe = wide
    with pytest.raises(NeurocorrError, match="bands of neurons.*in this process only.*executor"):
        compare(net_a, net_b, probe, memory_budget=BUDGET, shards=2, plugin_manager=pm)
    with pytest.raises(NeurocorrError, match=r"too small for even one tile: comparing 1700 x 1600 neurons over "
                                             r"3000 samples in tiles needs at least (\d+) bytes") as err:
        compare(net_a, net_b, probe, memory_budget="5MB", plugin_manager=pm)
    least = int(err.value.args[0].split("needs at least ")[1].split(" bytes")[0])
    assert least < BUDGET
    ran = compare(net_a, net_b, probe, memory_budget=least, constant_neurons="zero", plugin_manager=pm)
    assert ran.config["tiles"]["a"]["rows"] == least_rows([900, 800], [850, 750]) == 164  # the least bands
    with pytest.raises(NeurocorrError, match="significance|too small"):  # kept rows for significance: no bands
        compare(net_a, net_b, probe, memory_budget=BUDGET, permutations=5, plugin_manager=pm)
