"""Linear CKA's norms taken straight from the core's one gathered chunk (``chunk_norms``)
against the naive float64 formula: centre in float64, |X^T Y|_F^2 / (|X^T X|_F |Y^T Y|_F).

The chunk path runs only for layers wider than ``backend.SMALL_PRODUCT`` allows in float64
(more than 512 neurons), so most cases here use such layers; the others check the fallback."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import neurocorr_cka.chunk_norms as chunk_norms
import neurocorr_cka.moments as moments
from neurocorr_cka import LinearCka
from neurocorr_core import backend


def naive(x: np.ndarray, y: np.ndarray, sizes_a: list[int], sizes_b: list[int]) -> np.ndarray:
    """Per layer pair, float64 throughout; NaN where a layer's own norm is 0 (all constant)."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    xc, yc = x64 - x64.mean(axis=0), y64 - y64.mean(axis=0)
    cuts_a, cuts_b = np.cumsum([0, *sizes_a]), np.cumsum([0, *sizes_b])
    out = np.empty((len(sizes_a), len(sizes_b)))
    for i, (a0, a1) in enumerate(itertools.pairwise(cuts_a)):
        for j, (b0, b1) in enumerate(itertools.pairwise(cuts_b)):
            xa, yb = xc[:, a0:a1], yc[:, b0:b1]
            den = np.linalg.norm(xa.T @ xa) * np.linalg.norm(yb.T @ yb)
            out[i, j] = np.linalg.norm(xa.T @ yb) ** 2 / den if den > 0 else np.nan
    return out


@pytest.fixture
def taken(monkeypatch):
    """Records, per compute, whether the chunk path gave the norms (True) or fell back (False)."""
    seen: list[bool] = []
    real = moments.chunk_norms

    def spy(*args):
        got = real(*args)
        seen.append(got is not None)
        return got

    monkeypatch.setattr(moments, "chunk_norms", spy)
    return seen


def run(x, y, sizes_a, sizes_b, batch=256, chunk=None):
    metric = LinearCka(sizes_a, sizes_b)
    if chunk is not None:
        metric.moments.co.chunk = chunk  # before the first batch makes the buffers
    for s in range(0, len(x), batch):
        metric.update(x[s:s + batch], y[s:s + batch])
    return metric


def random_data(n, n_x, n_y, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_x)) * rng.uniform(0.1, 3, size=n_x) + rng.uniform(-5, 5, size=n_x)
    k = min(n_x, n_y)  # y shares x's first k neurons' signal
    y = rng.normal(size=(n, n_y))
    y[:, :k] += x[:, :k] @ rng.normal(size=(k, k)) / np.sqrt(k)
    return x.astype(np.float32), y.astype(np.float32)


def relu_data(n, n_x, n_y, seed=1, offset=1000.0):
    """ReLU-like layers: dead neurons (always 0), constant ones (3.5), sparse activity, and a
    large mean offset on part of the neurons."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 64))
    x = np.maximum(z @ rng.normal(size=(64, n_x)) + rng.normal(size=n_x) - 0.5, 0)
    y = np.maximum(np.tanh(z[:, :32]) @ rng.normal(size=(32, n_y)) + rng.normal(size=(n, n_y)) - 1.0, 0)
    x[:, :40] = 0.0                      # dead
    x[:, 40:50] = 3.5                    # constant, not zero
    y[:, -30:] = 0.0
    x[:, 100:300] += offset              # large offsets
    y[:, :200] += offset / 10
    return x.astype(np.float32), y.astype(np.float32)


@pytest.mark.parametrize("make", [random_data, relu_data])
def test_single_chunk_multi_layer_matches_naive_float64(make, taken):
    sizes_a, sizes_b = [600, 540], [520, 560]
    x, y = make(1500, sum(sizes_a), sum(sizes_b))
    metric = run(x, y, sizes_a, sizes_b, batch=300)
    got = metric.compute()
    assert taken == [True]
    np.testing.assert_allclose(got, naive(x, y, sizes_a, sizes_b), atol=1e-6, rtol=0)
    assert metric.count == 1500


def test_dead_layer_is_nan_and_constant_neurons_are_told_from_the_chunk(taken):
    sizes_a, sizes_b = [600, 530], [700]
    x, y = relu_data(900, 1130, 700)
    x[:, 600:] = 2.25  # the second layer of A: every neuron constant
    metric = run(x, y, sizes_a, sizes_b, batch=128)
    got = metric.compute()
    assert taken == [True]
    assert np.isnan(got[1, 0]) and np.isfinite(got[0, 0])
    np.testing.assert_allclose(got[0], naive(x, y, sizes_a, sizes_b)[0], atol=1e-6, rtol=0)
    dead_a, dead_b = metric.constant()
    assert dead_a[:50].all() and dead_a[600:].all() and not dead_a[50:600].any()
    np.testing.assert_array_equal(dead_b, np.ptp(y, axis=0) == 0)


@pytest.mark.parametrize("sizes_a, sizes_b", [([600, 100], [530]),   # one narrow layer
                                               ([300], [200])])       # the whole product small
def test_small_products_fall_back_to_the_accumulators(sizes_a, sizes_b, taken):
    x, y = relu_data(800, sum(sizes_a), sum(sizes_b))
    got = run(x, y, sizes_a, sizes_b).compute()
    assert taken == [False]
    np.testing.assert_allclose(got, naive(x, y, sizes_a, sizes_b), atol=1e-6, rtol=0)


def test_many_small_layers_with_the_chunk_path_forced(monkeypatch, taken):
    """Every layer-pair slice and partial panels, with the size rule switched off."""
    monkeypatch.setattr(backend, "SMALL_PRODUCT", 0)
    monkeypatch.setattr(chunk_norms, "PANEL_ROWS", 7)
    sizes_a, sizes_b = [3, 5, 1, 20], [4, 2, 3, 17]
    x, y = relu_data(500, sum(sizes_a), sum(sizes_b), offset=50.0)
    x[:, :2] = 0.0
    got = run(x, y, sizes_a, sizes_b, batch=37).compute()
    assert taken == [True]
    np.testing.assert_allclose(got, naive(x, y, sizes_a, sizes_b), atol=1e-6, rtol=0)


@pytest.mark.parametrize("make", [random_data, relu_data])
def test_more_samples_than_one_chunk_still_match(make, taken):
    sizes_a, sizes_b = [520], [530]
    metric = LinearCka(sizes_a, sizes_b)
    n = metric.moments.co.chunk + 700  # the default chunk, overrun
    x, y = make(n, 520, 530)
    for s in range(0, n, 1000):
        metric.update(x[s:s + 1000], y[s:s + 1000])
    got = metric.compute()
    assert True not in taken and metric.count == n  # the accumulating path
    np.testing.assert_allclose(got, naive(x, y, sizes_a, sizes_b), atol=1e-6, rtol=0)


def test_forced_chunks_and_merged_single_chunk_shards_match(taken):
    sizes_a, sizes_b = [600], [540, 520]
    x, y = relu_data(1200, 600, 1060)
    ref = naive(x, y, sizes_a, sizes_b)
    np.testing.assert_allclose(run(x, y, sizes_a, sizes_b, chunk=250).compute(), ref, atol=1e-6, rtol=0)
    left, right = run(x[:500], y[:500], sizes_a, sizes_b), run(x[500:], y[500:], sizes_a, sizes_b)
    left.merge(right)  # each shard was one chunk; the merge runs their products
    np.testing.assert_allclose(left.compute(), ref, atol=1e-6, rtol=0)
    assert True not in taken
