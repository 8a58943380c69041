"""The device= option: the forward pass runs where asked; a GPU on a CPU-only machine is a clear error."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurocorr_core import NeurocorrError, compare
from neurocorr_jax import JaxProvider

X = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
W = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)


def model(x):
    h = x @ W
    return h, {"dense1": h, "relu1": jax.nn.relu(h)}


def has_gpu() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


@pytest.mark.skipif(has_gpu(), reason="this machine has a GPU")
def test_gpu_on_a_cpu_only_machine_is_a_clear_error():
    with pytest.raises(NeurocorrError, match=r"device 'gpu' asked for, but this JAX .* has no GPU; use device=cpu"):
        JaxProvider(model, device="gpu")
    with pytest.raises(NeurocorrError, match="device 'cuda:1' asked for"):
        compare(model, model, X, options_a={"device": "cuda:1"})
    with pytest.raises(NeurocorrError, match="'tpu' is not a JAX device; use cpu, gpu"):
        JaxProvider(model, device="tpu")
    with pytest.raises(NeurocorrError, match=r"device 'cpu:7' asked for, but JAX sees \d+ cpu device"):
        JaxProvider(model, device="cpu:7")


@pytest.mark.parametrize("device", ["cpu", *(["gpu"] if has_gpu() else [])])
def test_values_on_the_device_equal_numpy(device):
    provider = JaxProvider(model, device=device)
    provider.layers(X[:2])
    out = next(provider.activations([X], ["dense1", "relu1"]))
    h = X.astype(np.float64) @ W.astype(np.float64)
    np.testing.assert_allclose(out["dense1"], h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["relu1"], np.maximum(h, 0), rtol=1e-5, atol=1e-5)
    assert provider.device.platform == ("cpu" if device == "cpu" else "gpu")
    assert all(isinstance(leaf, jnp.ndarray) for leaf in jax.tree.leaves(provider.adapter.params))
