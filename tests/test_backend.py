"""The streaming co-moments' chunking and backends, against numpy's float64 formulas."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

from neurocorr_core import NeurocorrError, stats
from neurocorr_core import backend as backends
from neurocorr_core.stats import CoMoments


def centred_cross(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    return (x64 - x64.mean(0)).T @ (y64 - y64.mean(0))


def naive_r(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    xc, yc = x64 - x64.mean(0), y64 - y64.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant column: NaN
        return (xc.T @ yc) / np.outer(np.linalg.norm(xc, axis=0), np.linalg.norm(yc, axis=0))


def feed(m: CoMoments, x: np.ndarray, y: np.ndarray, batch: int) -> CoMoments:
    for s in range(0, len(x), batch):
        m.update(x[s:s + batch], y[s:s + batch])
    return m


def data(seed: int = 0, samples: int = 700, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (offset + rng.normal(size=(samples, 9))).astype(np.float32)
    y = (0.6 * x[:, :5] + rng.normal(size=(samples, 5)) - 2 * offset).astype(np.float32)
    return x, y


@pytest.mark.parametrize("chunk, batch", [(4096, 64), (50, 64), (7, 3), (1000, 700), (3, 700)])
def test_chunks_and_batches_of_any_size_give_the_float64_answer(chunk, batch):
    """Batches split across chunks, chunks much smaller than batches, many pending groups."""
    x, y = data(1)
    m = feed(CoMoments(9, 5, chunk=chunk), x, y, batch)
    np.testing.assert_allclose(m.correlation(), naive_r(x, y), atol=1e-6)
    np.testing.assert_allclose(m.xy, centred_cross(x, y), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(m.mean_x, x.astype(np.float64).mean(0), atol=1e-7)
    np.testing.assert_allclose(m.var_y, ((y - y.astype(np.float64).mean(0)) ** 2).sum(0), rtol=1e-6)
    assert m.n == len(x)


def test_more_chunks_than_pending_corrections(monkeypatch):
    monkeypatch.setattr(stats, "MAX_PENDING", 3)
    x, y = data(2, samples=1000, offset=50.0)
    m = feed(CoMoments(9, 5, chunk=40), x, y, 30)
    np.testing.assert_allclose(m.correlation(), naive_r(x, y), atol=1e-6)


def test_large_float32_offsets_and_drifting_means():
    """Every chunk centred on its own first batch: a mean that drifts by 1e4 standard
    deviations over the run costs nothing."""
    rng = np.random.default_rng(3)
    t = np.linspace(0, 1, 3000)[:, None]
    x = (1e3 + 1e4 * t + rng.normal(size=(3000, 4))).astype(np.float32)
    y = (-1e3 - 1e4 * t + rng.normal(size=(3000, 3))).astype(np.float32)
    m = feed(CoMoments(4, 3, chunk=256), x, y, 100)
    np.testing.assert_allclose(m.correlation(), naive_r(x, y), atol=1e-6)


def test_caller_may_reuse_its_buffer():
    x, y = data(4)
    bx, by = np.empty((50, 9), np.float32), np.empty((50, 5), np.float32)
    m = CoMoments(9, 5)
    for s in range(0, 700, 50):
        bx[:], by[:] = x[s:s + 50], y[s:s + 50]
        m.update(bx, by)
    bx[:], by[:] = 0, 0
    np.testing.assert_allclose(m.correlation(), naive_r(x, y), atol=1e-6)


def test_shards_at_chunk_boundaries_merge_to_the_same_numbers():
    x, y = data(5, samples=800, offset=3.0)
    whole = feed(CoMoments(9, 5, chunk=100, within=True), x, y, 50)
    left = feed(CoMoments(9, 5, chunk=100, within=True), x[:300], y[:300], 50)
    right = feed(CoMoments(9, 5, chunk=100, within=True), x[300:], y[300:], 50)
    left.merge(right)
    np.testing.assert_allclose(left.xy, whole.xy, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(left.xx, whole.xx, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(left.correlation(), whole.correlation(), atol=1e-12)


def test_within_blocks_per_layer_and_whole():
    x, y = data(6)
    full = feed(CoMoments(9, 5, within=True, chunk=128), x, y, 100)
    np.testing.assert_allclose(full.xx, centred_cross(x, x), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(full.yy, centred_cross(y, y), rtol=1e-5, atol=1e-3)
    layered = feed(CoMoments(9, 5, within=([4, 5], [2, 3]), chunk=128), x, y, 100)
    cxx, cyy = centred_cross(x, x), centred_cross(y, y)
    for got, want in zip(layered.blocks_x, [cxx[:4, :4], cxx[4:, 4:]], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
    for got, want in zip(layered.blocks_y, [cyy[:2, :2], cyy[2:, 2:]], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(layered.xx, np.diagonal(cxx), rtol=1e-6)  # the diagonal in block mode
    with pytest.raises(ValueError, match="add up to 9"):
        CoMoments(9, 5, within=([4, 4], [5]))


def test_constant_neurons_are_exact_in_float32_and_float64():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    x[:, 1] = np.float32(0.3)
    x[:, 2] = np.float32(1e-30) * (rng.random(300) > 0.5)  # tiny values: their squares underflow
    x[:, 3] = 7.0
    x[150:, 3] = 7.0000005  # constant within each chunk, two values overall
    y = rng.normal(size=(300, 2)).astype(np.float32)
    m = feed(CoMoments(4, 2, chunk=150), x, y, 40)
    assert m.constant_x.tolist() == [False, True, False, False]
    assert m.var_x[1] == 0 and np.isnan(m.correlation()[1]).all()
    assert np.isfinite(m.correlation()[[0, 2, 3]]).all()
    # the same neurons arriving as float64 after a float32 start
    mixed = feed(CoMoments(4, 2, chunk=150), x[:100], y[:100], 40)
    feed(mixed, x[100:].astype(np.float64), y[100:].astype(np.float64), 40)
    assert mixed.constant_x.tolist() == [False, True, False, False]
    back = feed(CoMoments(4, 2, chunk=150), x[:100].astype(np.float64), y[:100], 40)
    back.update(np.full((5, 4), 3.0, np.float32), y[:5])  # float32 after float64: still tracked
    assert back.constant_x.tolist() == [False] * 4
    np.testing.assert_allclose(mixed.correlation()[[0, 2, 3]], naive_r(x, y)[[0, 2, 3]], atol=1e-6)


def test_pickle_mid_stream_then_continue():
    x, y = data(8)
    m = feed(CoMoments(9, 5, within=([4, 5], [5]), chunk=64), x[:300], y[:300], 50)
    copy = pickle.loads(pickle.dumps(m))
    assert copy._sides is None or copy._sides[0].buf.size  # buffers are not pickled
    feed(copy, x[300:], y[300:], 50)
    np.testing.assert_allclose(copy.correlation(), naive_r(x, y), atol=1e-6)
    np.testing.assert_allclose(copy.blocks_x[1], centred_cross(x, x)[4:, 4:], rtol=1e-5, atol=1e-3)


def test_numpy_backend_panels_and_rank_updates(monkeypatch):
    monkeypatch.setattr(backends, "PANEL_ELEMENTS", 20)  # several GEMM panels
    monkeypatch.setattr(backends, "BLOCK_ELEMENTS", 10)  # several blocks
    rng = np.random.default_rng(9)
    left = rng.normal(size=(30, 11)).astype(np.float32)
    right = rng.normal(size=(30, 7)).astype(np.float32)
    u, v, other = rng.normal(size=(11, 3)), rng.normal(size=(7, 3)), rng.normal(size=(11, 7))
    b = backends.NumpyBackend()
    acc = b.zeros(11, 7)
    b.add_product(acc, left, right)
    np.testing.assert_allclose(acc, left.astype(np.float64).T @ right, atol=1e-5)
    b.add(acc, other, u, v)
    np.testing.assert_allclose(acc, left.astype(np.float64).T @ right + other + u @ v.T, atol=1e-5)
    np.testing.assert_allclose(b.scaled(acc, np.arange(11.0), np.ones(7)), acc * np.arange(11.0)[:, None])


def test_backend_names(monkeypatch):
    assert backends.resolve("numpy").name == "numpy"
    monkeypatch.delenv(backends.ENV, raising=False)
    if "torch" not in sys.modules:  # auto never imports PyTorch itself
        assert backends.resolve(None).name == "numpy"
        assert "torch" not in sys.modules
    monkeypatch.setenv(backends.ENV, "bogus")
    with pytest.raises(NeurocorrError, match=r"backend 'bogus' \(from 'NEUROCORR_BACKEND'.*choose numpy"):
        CoMoments(2, 2)
    with pytest.raises(NeurocorrError, match="unknown backend 'gpu'"):
        backends.set_default("gpu")
    backends.set_default("numpy")
    try:
        assert CoMoments(2, 2).backend.name == "numpy"  # the default beats the environment
    finally:
        backends.set_default(None)


def test_chunk_must_be_positive():
    with pytest.raises(ValueError, match="chunk must be at least 1"):
        CoMoments(2, 2, chunk=0)


def test_small_products_are_float64_wide_ones_float32():
    """A float32 GEMM over k samples errs by about sqrt(k) roundings (1.1e-6 in r on real
    activations): an accumulator of up to SMALL_PRODUCT elements gets float64 products (exact
    to float64 rounding, also for a self-product, which reuses its copy); a wide one float32."""
    rng = np.random.default_rng(3)
    x = (3.0 + rng.normal(size=(5000, 20))).astype(np.float32)
    y = (x + 0.05 * rng.normal(size=x.shape)).astype(np.float32)
    exact = x.astype(np.float64).T @ y.astype(np.float64)
    scale = np.sqrt(np.outer((x.astype(np.float64) ** 2).sum(0), (y.astype(np.float64) ** 2).sum(0)))
    for left, right, want in ((x, y, exact), (x, x, x.astype(np.float64).T @ x.astype(np.float64))):
        acc = np.ones((20, 20))  # the product is added to what is there
        backends.NumpyBackend().add_product(acc, left, right)
        assert np.max(np.abs(acc - 1.0 - want) / scale) < 1e-13
    wide = np.zeros((1024, 1024))  # beyond SMALL_PRODUCT: one float32 GEMM, as before
    big = (3.0 + rng.normal(size=(64, 1024))).astype(np.float32)
    backends.NumpyBackend().add_product(wide, big, big)
    np.testing.assert_array_equal(wide, (big.T @ big).astype(np.float64))
    assert backends.depth(4096, 512, 512) == backends.DEPTH  # torch devices: float32 in steps
    assert backends.depth(4096, 2048, 2048) == 4096
