"""The optional PyTorch backend of the streaming co-moments: same numbers as numpy, threads
within BLAS's limit, and the GPU where one exists (skipped without)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neurocorr_core import NeurocorrError  # noqa: E402
from neurocorr_core import backend as backends  # noqa: E402
from neurocorr_core.stats import CoMoments  # noqa: E402


def feed(m, x, y, batch=70):
    for s in range(0, len(x), batch):
        m.update(x[s:s + batch], y[s:s + batch])
    return m


def naive_r(x, y):
    xc, yc = x - x.mean(0), y - y.mean(0)
    return (xc.T @ yc) / np.outer(np.linalg.norm(xc, axis=0), np.linalg.norm(yc, axis=0))


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_torch_backend_equals_float64_formula_and_numpy(device):
    rng = np.random.default_rng(0)
    x = (10 + rng.normal(size=(900, 12))).astype(np.float32)
    y = (0.4 * x[:, :6] + rng.normal(size=(900, 6))).astype(np.float32)
    got = feed(CoMoments(12, 6, chunk=128, within=([5, 7], [6]), backend=f"torch:{device}"), x, y)
    ref = feed(CoMoments(12, 6, chunk=128, within=([5, 7], [6]), backend="numpy"), x, y)
    want = naive_r(x.astype(np.float64), y.astype(np.float64))
    np.testing.assert_allclose(got.correlation(), want, atol=1e-6)
    np.testing.assert_allclose(got.correlation(), ref.correlation(), atol=1e-7)
    for a, b in zip(got.blocks_x, ref.blocks_x, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-4)  # entries up to ~900: float32 GEMMs
    half = feed(CoMoments(12, 6, chunk=128, backend=f"torch:{device}"), x[:512], y[:512])
    half.merge(feed(CoMoments(12, 6, chunk=128, backend="numpy"), x[512:], y[512:]))
    np.testing.assert_allclose(half.correlation(), ref.correlation(), atol=1e-6)
    again = pickle.loads(pickle.dumps(got))
    assert again.backend.name == got.backend.name
    np.testing.assert_allclose(again.correlation(), ref.correlation(), atol=1e-7)


def test_torch_cpu_threads_follow_the_blas_limit():
    from threadpoolctl import threadpool_limits

    seen = []
    b = backends.TorchBackend("cpu")
    real = torch.Tensor.add_

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(self, *args, **kwargs)

    before = torch.get_num_threads()
    with threadpool_limits(1, user_api="blas"):
        torch.Tensor.add_ = spy
        try:
            b.add_product(b.zeros(3, 2), np.ones((4, 3), np.float32), np.ones((4, 2), np.float32))
        finally:
            torch.Tensor.add_ = real
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before  # restored


def test_auto_uses_the_gpu_only_when_torch_sees_one():
    assert backends.resolve("auto").name == ("torch:cuda" if torch.cuda.is_available() else "numpy")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_says_what_to_do():
    with pytest.raises(NeurocorrError, match="device 'cuda' is not usable here.*torch:cpu"):
        backends.resolve("torch:cuda")
