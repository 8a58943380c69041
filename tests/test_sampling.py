"""Partial-layer comparisons: seeded neuron and probe sampling, and the stratified estimate
of the network score with its standard error, checked against exhaustive enumeration of
every possible sample and against the full comparison."""

import itertools

import numpy as np
import pytest

from neurocorr_core import NeurocorrError, compare
from neurocorr_core.sampling import check_amount, how_many, parse_amount, sample_neurons, sampled_sizes, stratified_mean
from numpy_models import mlp


def test_sample_neurons_per_layer_seeded():
    sizes = [10, 3, 40]
    rows = sample_neurons(sizes, 0.25, np.random.default_rng(0))
    assert sampled_sizes(sizes, rows) == [3, 2, 10]  # ceil(25%), at least 2 per layer
    assert np.all(np.diff(rows) > 0) and rows[-1] < 53
    np.testing.assert_array_equal(rows, sample_neurons(sizes, 0.25, np.random.default_rng(0)))
    assert not np.array_equal(rows, sample_neurons(sizes, 0.25, np.random.default_rng(1)))
    assert sampled_sizes(sizes, sample_neurons(sizes, 5, np.random.default_rng(0))) == [5, 3, 5]
    assert sampled_sizes(sizes, sample_neurons(sizes, 1.0, np.random.default_rng(0))) == sizes
    assert how_many(1, 0.1) == 1 and how_many(7, None) == 7


def test_amounts_are_checked():
    assert check_amount(None, "x") is None and check_amount(0.5, "x") == 0.5 and check_amount(3, "x") == 3
    for bad, message in ((0, "count must be at least 1"), (1.5, r"fraction must lie in \(0, 1\]"),
                         (-0.1, "fraction"), ("10", "fraction in"), (True, "fraction in")):
        with pytest.raises(NeurocorrError, match=message):
            check_amount(bad, "sample_neurons")
    assert parse_amount("0.1") == 0.1 and parse_amount("100") == 100
    with pytest.raises(NeurocorrError, match="neither a fraction"):
        parse_amount("ten")


def test_stratified_estimator_is_unbiased_with_the_stated_variance():
    """Enumerate every stratified sample of a small population: the estimates average to the
    population mean, their variance is the formula with the population variances, and the
    estimated SE^2 averages to that variance (the estimator is unbiased for it)."""
    rng = np.random.default_rng(5)
    strata = [rng.random(6), rng.random(5) * 2, rng.random(4)]
    counts = [3, 2, 4]  # the last stratum is taken whole
    sizes = [len(s) for s in strata]
    estimates, variances = [], []
    choices = [itertools.combinations(range(n), k) for n, k in zip(sizes, counts, strict=True)]
    for picks in itertools.product(*choices):
        values = np.concatenate([s[list(p)] for s, p in zip(strata, picks, strict=True)])
        est = stratified_mean(values, sizes, counts)
        estimates.append(est.value)
        variances.append(est.standard_error ** 2)
    population = np.concatenate(strata)
    total = len(population)
    true_var = sum((n / total) ** 2 * (1 - k / n) * s.var(ddof=1) / k
                   for s, n, k in zip(strata, sizes, counts, strict=True))
    assert np.mean(estimates) == pytest.approx(population.mean(), abs=1e-12)
    assert np.var(estimates) == pytest.approx(true_var, rel=1e-9)
    assert np.mean(variances) == pytest.approx(true_var, rel=1e-9)


@pytest.fixture
def nets():
    probe = np.random.default_rng(6).normal(size=(60, 16)).astype(np.float32)
    return mlp(41, [120, 90, 60], dead=3), mlp(42, [100, 80]), probe


def test_sampled_estimate_matches_the_full_per_neuron_scores(pm, nets):
    net_a, net_b, probe = nets
    full = compare(net_a, net_b, probe, plugin_manager=pm)
    part = compare(net_a, net_b, probe, sample_neurons=0.2, seed=3, plugin_manager=pm)
    sampled_a = np.flatnonzero(part.partner_a >= 0)
    assert [lr.sampled for lr in part.layers_a] == [24, 18, 12]
    assert sampled_sizes([120, 90, 60], sampled_a) == [24, 18, 12]
    # every sampled neuron finds the same best match among ALL of B's neurons as in the full run
    np.testing.assert_array_equal(part.partner_a[sampled_a], full.partner_a[sampled_a])
    # the estimate is the stratified mean of the full run's per-neuron values on the sample
    values = _per_neuron_values(full, net_a, net_b, probe, pm)
    want = sum(n / 270 * values[lo:lo + n][np.isin(np.arange(lo, lo + n), sampled_a)].mean()
               for lo, n in ((0, 120), (120, 90), (210, 60)))
    assert part.score.a_to_b == pytest.approx(want, abs=1e-6)  # float32 GEMM vs float64 corrcoef
    np.testing.assert_allclose(part.value_a[sampled_a], values[sampled_a], atol=1e-6)
    assert np.isnan(np.delete(part.value_a, sampled_a)).all()  # not sampled: no value
    assert part.to_dict()["value_a"].count(None) == 270 - len(sampled_a)  # JSON has no NaN
    assert part.standard_error["a_to_b"] > 0 and part.standard_error["b_to_a"] > 0
    assert part.standard_error["symmetric"] == pytest.approx(
        0.5 * np.hypot(part.standard_error["a_to_b"], part.standard_error["b_to_a"]))
    assert part.config["sampling"]["sampled_a"] == 54 and full.standard_error is None
    assert part.dead_neurons == full.dead_neurons  # constant neurons are counted over all neurons


def _per_neuron_values(full, net_a, net_b, probe, pm):
    """Each A neuron's penalised best-match score, from the layer results' definition: the
    full run's per-layer means can't give it, so recompute with numpy.corrcoef."""
    x = np.concatenate([net_a.run(probe)[f"act{i}"] for i in range(3)], axis=1).astype(np.float64)
    y = np.concatenate([net_b.run(probe)[f"act{i}"] for i in range(2)], axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.nan_to_num(np.abs(np.corrcoef(x.T, y.T)[:270, 270:]))
    depth_a, depth_b = np.repeat([0, 1, 2], [120, 90, 60]), np.repeat([0, 1], [100, 80])
    values = (r / (np.abs(depth_a[:, None] - depth_b[None, :]) + 1)).max(axis=1)
    assert values.mean() == pytest.approx(full.score.a_to_b, abs=1e-6)  # the reference is right
    return values


def test_standard_error_describes_the_spread_over_seeds(pm, nets):
    net_a, net_b, probe = nets
    full = compare(net_a, net_b, probe, plugin_manager=pm).score.symmetric
    runs = [compare(net_a, net_b, probe, sample_neurons=0.15, seed=s, plugin_manager=pm) for s in range(30)]
    est = np.array([r.score.symmetric for r in runs])
    se = np.array([r.standard_error["symmetric"] for r in runs])
    assert np.mean(np.abs(est - full) <= 2 * se) >= 0.8  # ~95% expected
    assert 0.6 < est.std(ddof=1) / se.mean() < 1.5
    assert abs(est.mean() - full) < 3 * est.std(ddof=1) / np.sqrt(len(est))  # unbiased


def test_sampling_is_reproducible_and_seeded(pm, nets):
    net_a, net_b, probe = nets
    one = compare(net_a, net_b, probe, sample_neurons=10, sample_probe=0.5, seed=7, plugin_manager=pm)
    two = compare(net_a, net_b, probe, sample_neurons=10, sample_probe=0.5, seed=7, plugin_manager=pm)
    other = compare(net_a, net_b, probe, sample_neurons=10, sample_probe=0.5, seed=8, plugin_manager=pm)
    assert one.to_dict() == two.to_dict()
    assert one.score != other.score
    assert one.samples == 30 and one.config["probe"] == "array[30 of 60, seed 7]"
    assert [lr.sampled for lr in one.layers_b] == [10, 10]


def test_probe_sampling_equals_the_comparison_on_the_subset(pm, nets):
    from neurocorr_core.sampling import rng_for, sample_indices

    net_a, net_b, probe = nets
    idx = sample_indices(60, 25, rng_for(4, 2))
    assert len(idx) == 25 and len(set(idx.tolist())) == 25 and np.all(np.diff(idx) > 0)
    sub = compare(net_a, net_b, probe, sample_probe=25, seed=4, plugin_manager=pm)
    direct = compare(net_a, net_b, probe[idx], plugin_manager=pm)
    assert sub.samples == 25  # the sampled probe and the subset itself: another path, float32 rounding
    assert sub.score.to_dict() == pytest.approx(direct.score.to_dict(), abs=1e-6)


def test_sampling_errors(pm, nets):
    net_a, net_b, probe = nets
    for matching in ("mutual", "hungarian"):
        with pytest.raises(NeurocorrError, match=f"matching '{matching}' pairs depend on every neuron"):
            compare(net_a, net_b, probe, matching=matching, sample_neurons=0.5, plugin_manager=pm)
    with pytest.raises(NeurocorrError, match=r"sample_probe as a fraction must lie in \(0, 1\]"):
        compare(net_a, net_b, probe, sample_probe=2.5, plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="has 1 sample"):
        compare(net_a, net_b, probe, sample_probe=1, plugin_manager=pm)


def test_sampling_with_tiles(pm, nets):
    net_a, net_b, probe = nets
    plain = compare(net_a, net_b, probe, sample_neurons=0.3, seed=2, plugin_manager=pm)
    tiled = compare(net_a, net_b, probe, sample_neurons=0.3, seed=2, memory_budget="900kB", plugin_manager=pm)
    assert tiled.config["tiles"] is not None and set(tiled.config["tiles"]) == {"a", "b"}
    np.testing.assert_array_equal(tiled.partner_a, plain.partner_a)
    np.testing.assert_array_equal(tiled.partner_b, plain.partner_b)
    assert tiled.score.a_to_b == pytest.approx(plain.score.a_to_b, abs=1e-6)
