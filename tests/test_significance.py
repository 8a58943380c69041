"""Significance: the permutation null and the bootstrap interval, against scipy.stats'
permutation_test and bootstrap on the same statistic, and on networks whose relation is
known: unrelated (they read independent halves of the input) and a noisy copy."""

import json

import numpy as np
import pytest
from scipy import stats

from neurocorr_core import NeurocorrError, compare
from neurocorr_core.significance import assess
from numpy_models import NumpyNet, dense, relu


def mlp_on(columns, seed, widths=(10, 8)):
    """An MLP that reads only the input features ``columns`` of a (N, 16) probe."""
    rng = np.random.default_rng(seed)
    steps = [("take", "Other", lambda x: x.reshape(len(x), -1)[:, columns])]
    n_in = len(columns)
    for i, width in enumerate(widths):
        steps += [(f"fc{i}", "Linear", dense(rng, n_in, width)), (f"act{i}", "ReLU", relu)]
        n_in = width
    return NumpyNet(steps, (16,))


def weighted_mlp(weights):
    steps = []
    for i, (w, b) in enumerate(weights):
        steps += [(f"fc{i}", "Linear", lambda x, w=w, b=b: x.reshape(len(x), -1) @ w + b), (f"act{i}", "ReLU", relu)]
    return NumpyNet(steps, (16,))


def test_unrelated_networks_are_not_significant_in_most_seeds(pm):
    """A reads features 0-7, B features 8-15 of an i.i.d. Gaussian probe: their activations
    are independent, so the permutation p-value is uniform and rarely below 0.05."""
    p_values = []
    for seed in range(20):
        probe = np.random.default_rng(100 + seed).normal(size=(30, 16)).astype(np.float32)
        result = compare(mlp_on(range(8), seed), mlp_on(range(8, 16), 50 + seed), probe, permutations=39,
                         seed=seed, layers_a="act*", layers_b="act*", plugin_manager=pm)
        p_values.append(result.significance.p_value)
    assert sum(p > 0.05 for p in p_values) >= 16, p_values
    assert min(p_values) >= 1 / 40


def test_noisy_copy_is_significant(pm):
    rng = np.random.default_rng(7)
    weights = [(rng.normal(0, 0.25, (16, 12)), rng.normal(0, 0.1, 12)),
               (rng.normal(0, 0.3, (12, 8)), rng.normal(0, 0.1, 8))]
    noisy = [(w + rng.normal(0, 0.5 * w.std(), w.shape), b) for w, b in weights]
    probe = rng.normal(size=(40, 16)).astype(np.float32)
    result = compare(weighted_mlp(weights), weighted_mlp(noisy), probe, permutations=199, bootstrap=200,
                     seed=1, layers_a="act*", layers_b="act*", plugin_manager=pm)
    sig = result.significance
    assert sig.p_value < 0.01 and sig.p_value == pytest.approx(1 / 200)
    assert sig.z > 5
    assert sig.ci[0] < sig.ci[1] and sig.bootstrap_std > 0
    assert sig.ci[0] > sig.null_mean  # the interval sits far above chance


def test_significance_is_reproducible(pm):
    probe = np.random.default_rng(8).normal(size=(25, 16)).astype(np.float32)
    a, b = mlp_on(range(16), 1), mlp_on(range(16), 2)
    kw = dict(permutations=20, bootstrap=20, layers_a="act*", layers_b="act*", plugin_manager=pm)
    one, two = compare(a, b, probe, seed=3, **kw), compare(a, b, probe, seed=3, **kw)
    other = compare(a, b, probe, seed=4, **kw)
    assert one.significance == two.significance
    assert one.significance.null_mean != other.significance.null_mean
    assert one.significance.ci != other.significance.ci
    data = json.loads(one.to_json())
    assert set(data["significance"]) == {"statistic", "seed", "permutations", "permuted", "null_mean", "null_std",
                                         "z", "p_value", "bootstrap", "confidence", "ci", "ci_basic",
                                         "bootstrap_std", "bootstrap_bias"}
    assert data["significance"]["seed"] == 3 and len(data["significance"]["ci"]) == 2


def _abs_r(x, y):
    return abs(np.corrcoef(x[:, 0], y[:, 0])[0, 1])


def test_permutation_p_value_and_z_agree_with_scipy():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(30, 1))
    y = 0.3 * x + rng.normal(size=(30, 1))
    observed = _abs_r(x, y)
    ours = assess(observed, _abs_r, x, y, permutations=3000, bootstrap=0, confidence=0.95, seed=0)
    ref = stats.permutation_test((x[:, 0], y[:, 0]), lambda a, b: abs(np.corrcoef(a, b)[0, 1]),
                                 permutation_type="pairings", n_resamples=3000, alternative="greater",
                                 random_state=1)
    assert 0.01 < ref.pvalue < 0.5  # a case where the p-value is informative
    assert ours.p_value == pytest.approx(ref.pvalue, abs=0.03)
    ref_z = (observed - ref.null_distribution.mean()) / ref.null_distribution.std(ddof=1)
    assert ours.z == pytest.approx(ref_z, abs=0.1)


def test_bootstrap_interval_agrees_with_scipy():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(60, 1))
    y = 0.5 * x + rng.normal(size=(60, 1))
    ours = assess(_abs_r(x, y), _abs_r, x, y, permutations=0, bootstrap=3000, confidence=0.9, seed=0)
    ref = stats.bootstrap((x[:, 0], y[:, 0]), lambda a, b: abs(np.corrcoef(a, b)[0, 1]), paired=True,
                          vectorized=False, method="percentile", n_resamples=3000, confidence_level=0.9,
                          random_state=1)
    assert ours.ci[0] == pytest.approx(ref.confidence_interval.low, abs=0.03)
    assert ours.ci[1] == pytest.approx(ref.confidence_interval.high, abs=0.03)
    assert ours.bootstrap_std == pytest.approx(ref.standard_error, rel=0.1)
    basic = stats.bootstrap((x[:, 0], y[:, 0]), lambda a, b: abs(np.corrcoef(a, b)[0, 1]), paired=True,
                            vectorized=False, method="basic", n_resamples=3000, confidence_level=0.9,
                            random_state=1)
    assert ours.ci_basic[0] == pytest.approx(basic.confidence_interval.low, abs=0.03)
    assert ours.ci_basic[1] == pytest.approx(basic.confidence_interval.high, abs=0.03)
    assert abs(ours.bootstrap_bias) < 0.3 * ours.bootstrap_std  # |r| of one pair is nearly unbiased
    assert ours.p_value is None and ours.permutations == 0


def test_significance_options_are_checked(pm):
    probe = np.random.default_rng(11).normal(size=(20, 16)).astype(np.float32)
    a, b = mlp_on(range(16), 1), mlp_on(range(16), 2)
    for kwargs, message in (({"permutations": 1}, "permutations=1 gives no spread"),
                            ({"bootstrap": -5}, "bootstrap must be a whole number >= 0"),
                            ({"permutations": 2.5}, "permutations must be a whole number"),
                            ({"confidence": 1.0}, r"confidence must lie in \(0, 1\)")):
        with pytest.raises(NeurocorrError, match=message):
            compare(a, b, probe, plugin_manager=pm, **kwargs)
    plain = compare(a, b, probe, plugin_manager=pm)
    assert plain.significance is None and json.loads(plain.to_json())["significance"] is None


def test_significance_with_sampled_neurons_and_tiles(pm):
    probe = np.random.default_rng(12).normal(size=(30, 16)).astype(np.float32)
    a, b = mlp_on(range(16), 1, (200, 150)), mlp_on(range(16), 2, (180, 120))
    kw = dict(permutations=9 + 10, sample_neurons=0.5, seed=5, layers_a="act*", layers_b="act*", plugin_manager=pm)
    plain = compare(a, b, probe, **kw)
    tiled = compare(a, b, probe, memory_budget="1MB", **kw)
    assert tiled.config["tiles"] is not None
    assert tiled.significance.p_value == plain.significance.p_value
    assert tiled.significance.null_mean == pytest.approx(plain.significance.null_mean, abs=1e-6)
