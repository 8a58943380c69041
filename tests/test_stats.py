"""Streaming co-moments against scipy and against one-pass numpy."""

import numpy as np
import pytest
from scipy import stats

from neurocorr_core.stats import CoMoments


def pearson_by_scipy(x, y):
    return np.array([[stats.pearsonr(x[:, i], y[:, j])[0] for j in range(y.shape[1])]
                     for i in range(x.shape[1])])


def streamed(x, y, batch, within=False, chunk=4096):
    m = CoMoments(x.shape[1], y.shape[1], within=within, chunk=chunk)
    for s in range(0, len(x), batch):
        m.update(x[s:s + batch], y[s:s + batch])
    return m


def test_pearson_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 7))
    y = 0.5 * x[:, :5] + rng.normal(size=(500, 5))
    r = streamed(x, y, batch=64).correlation()
    np.testing.assert_allclose(r, pearson_by_scipy(x, y), atol=1e-6)


def test_large_offset_does_not_cancel():
    """Values around 1e6 with unit variance: E[x^2] - E[x]^2 in float32 would be noise."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=(2000, 4))
    x = 1e6 + base
    y = -3e6 + np.column_stack([base[:, 0] * 0.9 + 0.1 * rng.normal(size=2000), rng.normal(size=(2000, 2))])
    r = streamed(x, y, batch=300).correlation()
    np.testing.assert_allclose(r, pearson_by_scipy(x, y), atol=1e-6)
    assert r[0, 0] > 0.99


def test_large_offset_in_float32_activations():
    """float32 activations near 1e6 (ulp 0.0625): same answer as scipy on the same float32 values."""
    rng = np.random.default_rng(2)
    x = (1e6 + 8 * rng.normal(size=(3000, 3))).astype(np.float32)
    y = (x[:, :2] + rng.normal(size=(3000, 2)).astype(np.float32)).astype(np.float32)
    r = streamed(x, y, batch=256).correlation()
    np.testing.assert_allclose(r, pearson_by_scipy(x.astype(np.float64), y.astype(np.float64)), atol=1e-6)


def test_shard_merge_equals_one_pass():
    """Shards cut at chunk boundaries see the same float32 products: merging is exact to 1e-9."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(5, 2, size=(1000, 6)), rng.normal(-1, 3, size=(1000, 4))
    whole = streamed(x, y, batch=100, within=True, chunk=100)
    left = streamed(x[:400], y[:400], 100, True, chunk=100)
    right = streamed(x[400:], y[400:], 100, True, chunk=100)
    left.merge(right)
    np.testing.assert_allclose(left.correlation(), whole.correlation(), atol=1e-9)
    np.testing.assert_allclose(left.xx, whole.xx, rtol=1e-9)
    np.testing.assert_allclose(left.mean_y, whole.mean_y, rtol=1e-12)
    assert left.n == whole.n == 1000


def test_chunking_changes_only_float32_rounding():
    rng = np.random.default_rng(5)
    x, y = rng.normal(5, 2, size=(1000, 6)), rng.normal(-1, 3, size=(1000, 4))
    a, b = streamed(x, y, batch=1000), streamed(x, y, batch=37, chunk=37)
    np.testing.assert_allclose(a.correlation(), b.correlation(), atol=1e-6)
    np.testing.assert_allclose(b.correlation(), pearson_by_scipy(x, y), atol=1e-6)


def test_constant_neuron_is_nan_and_exactly_zero_variance():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(100, 3))
    x[:, 1] = 0.3  # constant, not exactly representable in binary
    y = rng.normal(size=(100, 2))
    m = streamed(x, y, batch=7)
    assert m.var_x[1] == 0
    r = m.correlation()
    assert np.isnan(r[1]).all() and np.isfinite(r[[0, 2]]).all()


def test_mismatched_batches_rejected():
    with pytest.raises(ValueError, match="batch lengths differ"):
        CoMoments(2, 2).update(np.zeros((3, 2)), np.zeros((4, 2)))
