"""CKA metrics against naive Gram-matrix formulas, shard merges, dead layers and errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cka_reference import (
    hsic_biased,
    hsic_u_statistic,
    hsic_unbiased,
    linear_gram,
    rbf_gram_naive,
    table,
)
from neurocorr_cka import DebiasedCka, DebiasedRbfCka, LinearCka, MinibatchRbfCka, RbfCka
from neurocorr_cka.moments import LayerMoments
from neurocorr_core import NeurocorrError, PluginManager

SIZES_A, SIZES_B = [3, 5, 1], [4, 2, 3]


def data(n: int = 64, seed: int = 0, offset: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Two models' layers: offsets, unequal scales, shared signal in B's first layer (float64)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 9)) * rng.uniform(0.1, 5, size=9)
    y = np.hstack([x[:, :4] @ rng.normal(size=(4, 4)), np.tanh(x[:, 4:9] / 3) ** 2])
    return x + offset, y + 0.3 * rng.normal(size=(n, 9)) - offset


def feed(metric, x, y, cuts=(0, 5, 6, 23, 40)):
    """Feed uneven batches (including a batch of one sample)."""
    bounds = [*cuts, x.shape[0]]
    for i, j in itertools.pairwise(bounds):
        metric.update(x[i:j], y[i:j])
    return metric


def test_linear_cka_equals_textbook_formula():
    x, y = data()
    got = feed(LinearCka(SIZES_A, SIZES_B, precision="float64"), x, y).compute()
    ref = table(x, y, SIZES_A, SIZES_B, linear_gram, hsic_biased)  # uncentred X: H centres
    assert got.shape == (3, 3)
    np.testing.assert_allclose(got, ref, atol=1e-8, rtol=0)
    assert got.max() > 0.5 and got.min() < 0.2  # the table holds both high and low values


def test_linear_cka_float32_default_is_close():
    x, y = data()
    got = feed(LinearCka(SIZES_A, SIZES_B), x.astype(np.float32), y.astype(np.float32)).compute()
    ref = table(x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64),
                SIZES_A, SIZES_B, linear_gram, hsic_biased)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


def test_unbiased_hsic_reference_is_the_u_statistic():
    """The naive matrix formula used below equals the brute-force U-statistic."""
    x, y = data(n=7, offset=0.0)
    k, l = linear_gram(x[:, :3]), linear_gram(y[:, 4:])  # noqa: E741
    assert hsic_unbiased(k, l) == pytest.approx(hsic_u_statistic(k, l), rel=1e-9)
    k = rbf_gram_naive(x[:, 3:8], 0.5)
    assert hsic_unbiased(k, l) == pytest.approx(hsic_u_statistic(k, l), rel=1e-9)


def test_debiased_cka_equals_naive_unbiased_hsic():
    x, y = data()
    got = feed(DebiasedCka(SIZES_A, SIZES_B, precision="float64"), x, y).compute()
    ref = table(x, y, SIZES_A, SIZES_B, linear_gram, hsic_unbiased)
    np.testing.assert_allclose(got, ref, atol=1e-8, rtol=0)
    linear = table(x, y, SIZES_A, SIZES_B, linear_gram, hsic_biased)
    assert np.abs(got - linear).max() > 0.01  # it is a different estimator


def test_debiased_cka_float32_default_is_close():
    x, y = data()
    got = feed(DebiasedCka(SIZES_A, SIZES_B), x.astype(np.float32), y.astype(np.float32)).compute()
    ref = table(x, y, SIZES_A, SIZES_B, linear_gram, hsic_unbiased)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("cls", "hsic"), [(LinearCka, hsic_biased), (DebiasedCka, hsic_unbiased)])
def test_large_offsets_cost_no_precision(cls, hsic):
    """Streamed on data offset by 1e4, CKA equals the naive formula on the centred data."""
    x, y = data(offset=0.0)
    x, y = x - x.mean(0), y - y.mean(0)
    got = feed(cls(SIZES_A, SIZES_B, precision="float64"), x + 1e4, y - 1e4).compute()
    np.testing.assert_allclose(got, table(x, y, SIZES_A, SIZES_B, linear_gram, hsic), atol=1e-8, rtol=0)


@pytest.mark.parametrize("cls", [LinearCka, DebiasedCka])
def test_merge_of_shards_equals_one_pass(cls):
    x, y = data(n=90, seed=2)
    whole = feed(cls(SIZES_A, SIZES_B, precision="float64"), x, y)
    parts = [feed(cls(SIZES_A, SIZES_B, precision="float64"), x[i:j], y[i:j], cuts=(0, 3))
             for i, j in [(0, 10), (10, 11), (11, 57), (57, 90)]]
    merged = cls(SIZES_A, SIZES_B, precision="float64")
    for part in reversed(parts):  # the order of shards does not matter
        merged.merge(part)
    assert merged.count == 90
    np.testing.assert_allclose(merged.compute(), whole.compute(), atol=1e-10, rtol=0)
    alone = feed(cls(SIZES_A, SIZES_B, precision="float64"), x[:10], y[:10], cuts=(0, 3))
    np.testing.assert_array_equal(parts[0].compute(), alone.compute())  # merge left its input as is


def test_streamed_higher_moments_equal_direct_sums():
    """Every accumulated sum equals its definition on the globally centred data."""
    x, y = data(n=40, seed=5)
    m = LayerMoments(SIZES_A, SIZES_B, higher=True, dtype=np.float64)
    feed(m, x, y, cuts=(0, 1, 2, 17))
    e, f = x - x.mean(0), y - y.mean(0)
    ia, ib = np.cumsum([0, *SIZES_A]), np.cumsum([0, *SIZES_B])
    a = np.column_stack([(e[:, ia[i]:ia[i + 1]] ** 2).sum(1) for i in range(3)])
    b = np.column_stack([(f[:, ib[i]:ib[i + 1]] ** 2).sum(1) for i in range(3)])
    np.testing.assert_allclose(m.cxy, e.T @ f, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(m.qab, a.T @ b, rtol=1e-10)
    np.testing.assert_allclose(m.a.q, (a ** 2).sum(0), rtol=1e-10)
    np.testing.assert_allclose(m.txb, e.T @ b, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(m.tya, f.T @ a, rtol=1e-10, atol=1e-8)
    layer = np.repeat(np.arange(3), SIZES_A)
    np.testing.assert_allclose(m.a.t, (e * a[:, layer]).sum(0), rtol=1e-10, atol=1e-8)
    for i, block in enumerate(m.b.blocks):
        fi = f[:, ib[i]:ib[i + 1]]
        np.testing.assert_allclose(block, fi.T @ fi, rtol=1e-10, atol=1e-9)


def test_rbf_cka_equals_naive_gram_on_one_batch():
    x, y = data(n=40, seed=3)
    m = feed(MinibatchRbfCka(SIZES_A, SIZES_B, bandwidth=0.5, batch_size=64), x, y)
    assert m.samples_used == 0  # the 40 samples are one (short) minibatch, made at compute()
    ref = table(x, y, SIZES_A, SIZES_B, lambda z: rbf_gram_naive(z, 0.5), hsic_unbiased)
    np.testing.assert_allclose(m.compute(), ref, atol=1e-10, rtol=0)


def test_rbf_cka_averages_minibatches_weighted_by_size():
    x, y = data(n=50, seed=4)
    m = feed(MinibatchRbfCka([9], [9], bandwidth=1.0, batch_size=20), x, y)  # minibatches 20, 20, 10
    assert m.samples_used == 40

    def hsics(i, j):
        k, l = rbf_gram_naive(x[i:j], 1.0), rbf_gram_naive(y[i:j], 1.0)  # noqa: E741
        return np.array([hsic_unbiased(k, l), hsic_unbiased(k, k), hsic_unbiased(l, l)]) * (j - i)

    xy, xx, yy = hsics(0, 20) + hsics(20, 40) + hsics(40, 50)
    assert m.compute()[0, 0] == pytest.approx(xy / np.sqrt(xx * yy), abs=1e-10)
    m = feed(MinibatchRbfCka([9], [9], bandwidth=1.0, batch_size=20), x[:42], y[:42])
    xy, xx, yy = hsics(0, 20) + hsics(20, 40)  # the last 2 samples are too few for a minibatch
    assert m.compute()[0, 0] == pytest.approx(xy / np.sqrt(xx * yy), abs=1e-10)
    assert m.count == 42 and m.samples_used == 40


def test_rbf_merge_equals_one_pass_on_batch_boundaries():
    x, y = data(n=60, seed=6)
    whole = feed(MinibatchRbfCka(SIZES_A, SIZES_B, batch_size=20), x, y)
    first = feed(MinibatchRbfCka(SIZES_A, SIZES_B, batch_size=20), x[:20], y[:20])
    second = feed(MinibatchRbfCka(SIZES_A, SIZES_B, batch_size=20), x[20:], y[20:])
    first.merge(second)
    assert first.count == 60
    np.testing.assert_allclose(first.compute(), whole.compute(), atol=1e-12)


def test_constant_neurons_and_dead_layers():
    x, y = data(n=30, seed=7)
    x[:, 8] = 3.0  # layer 2 of A is its one neuron: a dead layer
    y[:, 4] = -1.0  # one dead neuron inside layer 1 of B (two neurons)
    for metric in (LinearCka(SIZES_A, SIZES_B), DebiasedCka(SIZES_A, SIZES_B),
                   MinibatchRbfCka(SIZES_A, SIZES_B, batch_size=8)):
        feed(metric, x, y)
        dead_a, dead_b = metric.constant()
        assert np.flatnonzero(dead_a).tolist() == [8] and np.flatnonzero(dead_b).tolist() == [4]
        got = metric.compute()
        assert np.isnan(got[2]).all(), metric.name
        assert np.isfinite(got[:2]).all(), metric.name


def test_plugin_provides_five_layer_level_metrics():
    pm = PluginManager()
    assert pm.metric("cka") is LinearCka
    assert pm.metric("cka-debiased") is DebiasedCka
    assert pm.metric("cka-rbf") is RbfCka
    assert pm.metric("cka-rbf-debiased") is DebiasedRbfCka
    assert pm.metric("cka-rbf-minibatch") is MinibatchRbfCka
    assert {cls.level for cls in (LinearCka, DebiasedCka, RbfCka, DebiasedRbfCka,
                                  MinibatchRbfCka)} == {"layer"}


@pytest.mark.parametrize(("make", "match"), [
    (lambda: LinearCka([2], [2], precision="half"), r"precision must be one of \['float32', 'float64'\]"),
    (lambda: LinearCka([2], [2], kernel="rbf"),
     r"unknown option\(s\) \['kernel'\]; the options are precision"),
    (lambda: DebiasedCka([2, 0], [2]), "every layer needs at least one neuron"),
    (lambda: MinibatchRbfCka([2], [2], bandwidth=0), "bandwidth .* must be a positive number; got 0"),
    (lambda: MinibatchRbfCka([2], [2], bandwidth=float("nan")), "bandwidth"),
    (lambda: MinibatchRbfCka([2], [2], batch_size=3), r"batch_size must be an int >= 4"),
    (lambda: MinibatchRbfCka([2], [2], sigma=1), r"the options are bandwidth, batch_size"),
])
def test_bad_options(make, match):
    with pytest.raises(NeurocorrError, match=match):
        make()


@pytest.mark.parametrize("cls", [LinearCka, DebiasedCka, MinibatchRbfCka])
def test_bad_batches_and_too_few_samples(cls):
    m = cls([2], [3])
    with pytest.raises(NeurocorrError, match=f"{cls.name}: the batch of model A has 3 neurons"):
        m.update(np.zeros((4, 3)), np.zeros((4, 3)))
    y = np.zeros((4, 3))
    y[0, 2] = np.inf
    with pytest.raises(NeurocorrError, match=r"NaN/Inf in neuron\(s\) \[2\]"):
        m.update(np.zeros((4, 2)), y)
    m.update(np.arange(6.0).reshape(3, 2), np.arange(9.0).reshape(3, 3) ** 2)
    if cls is LinearCka:
        assert np.isfinite(m.compute()).all()
    else:
        with pytest.raises(NeurocorrError, match="at least 4 samples; got 3"):
            m.compute()
    with pytest.raises(NeurocorrError, match="same layer sizes"):
        m.merge(cls([3], [2]))
    other = LinearCka([2], [3]) if cls is not LinearCka else DebiasedCka([2], [3])
    with pytest.raises(NeurocorrError, match="can only merge"):
        m.merge(other)


def test_rbf_merge_needs_same_options():
    with pytest.raises(NeurocorrError, match="same layer sizes, bandwidth and batch_size"):
        MinibatchRbfCka([2], [2], bandwidth=0.5).merge(MinibatchRbfCka([2], [2]))


def test_rbf_keeps_copies_of_pending_samples():
    x, y = data(n=30, seed=8)
    expected = feed(MinibatchRbfCka(SIZES_A, SIZES_B), x, y).compute()
    m = MinibatchRbfCka(SIZES_A, SIZES_B)
    buffer_x, buffer_y = x.copy(), y.copy()
    m.update(buffer_x, buffer_y)
    buffer_x[:], buffer_y[:] = 0.0, 0.0  # a provider reusing its output buffers
    np.testing.assert_array_equal(m.compute(), expected)
