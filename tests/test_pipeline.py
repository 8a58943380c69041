"""The pipeline's public face (build a plan, feed an accumulator, finish, make the comparison)
gives what compare() gives, and its pieces do what they say."""

import numpy as np
import pytest

from neurocorr_core import NeurocorrError, compare
from neurocorr_core.assemble import make_comparison
from neurocorr_core.interfaces import LayerInfo
from neurocorr_core.matching import HungarianMatching, MaxMatching
from neurocorr_core.pipeline import Side, build_plan, constant_policy, metric_options
from numpy_models import mlp

neurocorr_pearson = pytest.importorskip("neurocorr_pearson")


def side(tag, sizes):
    return Side(tag, [LayerInfo(f"{tag}{i}", (n,), i, "activation", "Relu") for i, n in enumerate(sizes)],
                list(sizes))


def test_side_of_counts_neurons_in_the_chosen_view():
    layers = [LayerInfo("conv", (8, 5, 5), 0, "activation", "Relu"), LayerInfo("fc", (10,), 1, "activation", "Relu")]
    assert Side.of("net", layers, "channel").sizes == [8, 10]
    assert Side.of("net", layers, "position").sizes == [200, 10]


def test_a_sampled_plan_has_one_part_per_direction():
    plan = build_plan(neurocorr_pearson.Pearson, MaxMatching(), side("a", [20, 30]), side("b", [40]), samples=50,
                      constant="zero", penalty="paper", absolute=True, sample=0.5, seed=3)
    assert [p.side for p in plan.parts] == ["a", "b"] and not any(p.both for p in plan.parts)
    assert plan.parts[0].sizes_r == [10, 15] and plan.parts[0].sizes_c == [40]
    np.testing.assert_array_equal(plan.parts[0].sampled, plan.sampled_a)
    whole = build_plan(neurocorr_pearson.Pearson, MaxMatching(), side("a", [20, 30]), side("b", [40]), samples=50,
                       constant="zero", penalty="paper", absolute=True)
    assert [(p.side, p.both, p.sampled) for p in whole.parts] == [("a", True, None)] and whole.sampled_a is None


def test_the_public_face_gives_what_compare_gives(pm):
    """Sides, plan, accumulator over two halves merged, finish, comparison: compare()'s scores."""
    rng = np.random.default_rng(0)
    probe = rng.normal(size=(40, 16)).astype(np.float32)
    net_a, net_b = mlp(1, [12, 9]), mlp(2, [10])
    want = compare(net_a, net_b, probe, plugin_manager=pm)
    a, b = (Side(label, [r.info for r in results], [r.neurons for r in results])
            for label, results in ((want.model_a, want.layers_a), (want.model_b, want.layers_b)))
    plan = build_plan(neurocorr_pearson.Pearson, MaxMatching(), a, b, samples=len(probe),
                      constant=constant_policy(None, MaxMatching()), penalty="paper", absolute=True)
    x, y = (np.concatenate([out[layer.name] for layer in s.layers], axis=1)
            for out, s in ((net_a.run(probe), a), (net_b.run(probe), b)))
    halves = [plan.accumulator(), plan.accumulator()]
    halves[0].update(x[:20], y[:20])
    halves[1].update(x[20:], y[20:])
    for mine, theirs in zip(halves[0].metrics, halves[1].metrics, strict=True):
        mine.merge(theirs)
    got = make_comparison(plan, plan.finish(halves[0].metrics), config={}, versions={})
    assert got.score.a_to_b == pytest.approx(want.score.a_to_b, abs=1e-6)
    assert got.score.b_to_a == pytest.approx(want.score.b_to_a, abs=1e-6)
    np.testing.assert_array_equal(got.partner_a, want.partner_a)
    assert [r.score for r in got.layers_a] == pytest.approx([r.score for r in want.layers_a], abs=1e-6)


def test_constant_policy_and_metric_options():
    assert constant_policy(None, MaxMatching()) == "zero"
    assert constant_policy(None, HungarianMatching()) == "error"
    assert constant_policy("zero", HungarianMatching()) == "zero"
    with pytest.raises(NeurocorrError, match="constant_neurons must be 'zero' or 'error', got 'nan'"):
        constant_policy("nan", MaxMatching())

    class Budgeted(neurocorr_pearson.Pearson):
        takes_memory_budget = True

    assert metric_options(neurocorr_pearson.Pearson, {"x": 1}, 100) == {"x": 1}
    assert metric_options(Budgeted, {"x": 1}, 100) == {"x": 1, "memory_budget": 100}
    assert metric_options(Budgeted, {"memory_budget": 5}, 100) == {"memory_budget": 5}
    assert metric_options(Budgeted, None, None) == {}
