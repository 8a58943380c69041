"""The network score against a naive implementation of the paper's formula (scipy.stats.pearsonr
loops over neuron pairs), on numpy MLPs and CNNs with dead neurons and several depths."""

import warnings

import numpy as np
import pytest
from scipy import stats

from neurocorr_core import compare
from numpy_models import cnn, mlp


def naive_neurons(net, probe, view, selected):
    """Run the net step by step (not through the provider) and flatten chosen outputs."""
    x, cols, depths = probe.astype(np.float64), [], []
    for name, _, fn in net.steps:
        x = fn(x)
        if name in selected:
            out = x.astype(np.float32).astype(np.float64)
            if out.ndim == 4 and view == "channel":
                out = out.mean(axis=(2, 3))
            out = out.reshape(len(out), -1)
            cols += list(out.T)
            depths += [selected.index(name)] * out.shape[1]
    return cols, depths


def naive_values(cols_a, d_a, cols_b, d_b, penalty):
    """Each neuron of A's best |r| over B's neurons, divided by the paper's depth penalty."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant input and returns nan
        best = []
        for a, da in zip(cols_a, d_a, strict=True):
            vals = []
            for b, db in zip(cols_b, d_b, strict=True):
                r = stats.pearsonr(a, b)[0]
                r = 0.0 if np.isnan(r) else abs(r)
                vals.append(r / (abs(da - db) + 1) if penalty == "paper" else r)
            best.append(max(vals))
    return np.array(best)


def naive_score(cols_a, d_a, cols_b, d_b, penalty):
    return float(np.mean(naive_values(cols_a, d_a, cols_b, d_b, penalty)))


@pytest.mark.parametrize("view", ["channel", "position"])
@pytest.mark.parametrize("penalty", ["paper", "none"])
def test_score_equals_naive_formula(pm, view, penalty):
    probe = np.random.default_rng(7).normal(size=(40, 1, 8, 8)).astype(np.float32)
    net_a = cnn(seed=1)
    net_b = mlp(seed=2, widths=[12, 9, 6], n_in=64, dead=3)
    sel_a, sel_b = ["act0", "act1", "act2"], ["act0", "act1", "act2"]
    result = compare(net_a, net_b, probe, neurons=view, depth_penalty=penalty, batch_size=16,
                     layers_a="kind:activation", layers_b="act*", plugin_manager=pm)
    cols_a, d_a = naive_neurons(net_a, probe, view, sel_a)
    cols_b, d_b = naive_neurons(net_b, probe, view, sel_b)
    assert sum(lr.dead for lr in result.layers_b) >= 3
    assert result.score.a_to_b == pytest.approx(naive_score(cols_a, d_a, cols_b, d_b, penalty), abs=1e-5)
    assert result.score.b_to_a == pytest.approx(naive_score(cols_b, d_b, cols_a, d_a, penalty), abs=1e-5)
    assert result.score.symmetric == pytest.approx((result.score.a_to_b + result.score.b_to_a) / 2)
    np.testing.assert_allclose(result.value_a, naive_values(cols_a, d_a, cols_b, d_b, penalty), atol=1e-5)
    np.testing.assert_allclose(result.value_b, naive_values(cols_b, d_b, cols_a, d_a, penalty), atol=1e-5)


def test_layer_table_is_mean_best_match_without_penalty(pm):
    probe = np.random.default_rng(8).normal(size=(30, 16)).astype(np.float32)
    net_a, net_b = mlp(seed=3, widths=[8, 5]), mlp(seed=4, widths=[6, 7, 4])
    result = compare(net_a, net_b, probe, layers_a="act*", layers_b="act*", plugin_manager=pm)
    cols_a, _ = naive_neurons(net_a, probe, "channel", ["act0", "act1"])
    cols_b, _ = naive_neurons(net_b, probe, "channel", ["act0", "act1", "act2"])
    bounds_a, bounds_b = [0, 8, 13], [0, 6, 13, 17]
    assert result.layer_table.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            expected = naive_score(cols_a[bounds_a[i]:bounds_a[i + 1]], [0] * (bounds_a[i + 1] - bounds_a[i]),
                                   cols_b[bounds_b[j]:bounds_b[j + 1]], [0] * (bounds_b[j + 1] - bounds_b[j]),
                                   "none")
            assert result.layer_table[i, j] == pytest.approx(expected, abs=1e-6)


def test_self_comparison_and_signed_option(pm):
    probe = np.random.default_rng(9).normal(size=(50, 16)).astype(np.float32)
    net = mlp(seed=5, widths=[10, 10], dead=2)
    result = compare(net, net, probe, plugin_manager=pm)
    assert result.dead_neurons["a"] == {"act0": 2, "act1": 0}
    live = np.arange(20)[2:]  # dead neurons (last of act0: indices 8, 9) have no partner score
    assert result.score.a_to_b == pytest.approx(18 / 20)
    assert all(result.partner_a[k] == k for k in live if k not in (8, 9))
    signed = compare(net, net, probe, absolute=False, plugin_manager=pm)
    assert signed.config["absolute"] is False
    assert signed.score.a_to_b == pytest.approx(18 / 20)
