"""The reference MLP and CNN (see reference.py) built natively in JAX, three ways each.

- ``build_*_nnx``: Flax nnx modules (``nnx.Sequential`` with ``nnx.relu`` between layers).
- ``build_*_linen``: Flax linen ``(module, variables)`` tuples, the object the JAX provider
  accepts for linen.
- ``build_*_fn``: plain JAX functions following the JAX provider's protocol
  ``fn(x) -> (output, {layer_name: array})`` (layers named after their op, so the ReLU
  outputs are ``kind:activation``).

The CNN modules take NHWC images (the Flax convention; the provider transposes the NCHW
probe); the CNN function takes NCHW images, as the probe comes, to exercise both layouts.
Weights arrive in PyTorch layout (dense (out, in), conv OIHW) and are converted here:
Flax dense kernels are (in, out), Flax conv kernels HWIO.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen, nnx

from reference import cnn_weights, mlp_weights

JaxFunction = Callable[[jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


def _dense_kernel(w: np.ndarray) -> jax.Array:
    return jnp.asarray(w.T)  # (out, in) -> (in, out)


def _conv_kernel(w: np.ndarray) -> jax.Array:
    return jnp.asarray(w.transpose(2, 3, 1, 0))  # OIHW -> HWIO


def flatten(x: jax.Array) -> jax.Array:
    return x.reshape(x.shape[0], -1)


_pool = functools.partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2))


# -- nnx --------------------------------------------------------------------------------------
def _given(value: jax.Array) -> Callable[..., jax.Array]:
    """An initializer that returns ``value``: no random init to compile and overwrite."""
    return lambda key, shape, dtype=jnp.float32: value.astype(dtype).reshape(shape)


def _nnx_linear(w: np.ndarray, b: np.ndarray) -> nnx.Linear:
    return nnx.Linear(w.shape[1], w.shape[0], kernel_init=_given(_dense_kernel(w)),
                      bias_init=_given(jnp.asarray(b)), rngs=nnx.Rngs(0))


def _nnx_conv(w: np.ndarray, b: np.ndarray) -> nnx.Conv:
    return nnx.Conv(w.shape[1], w.shape[0], w.shape[2:], padding="VALID", kernel_init=_given(_conv_kernel(w)),
                    bias_init=_given(jnp.asarray(b)), rngs=nnx.Rngs(0))


def build_mlp_nnx(seed: int = 0) -> nnx.Sequential:
    w = mlp_weights(seed)
    return nnx.Sequential(
        _nnx_linear(w["fc1.w"], w["fc1.b"]), nnx.relu,
        _nnx_linear(w["fc2.w"], w["fc2.b"]), nnx.relu,
        _nnx_linear(w["fc3.w"], w["fc3.b"]),
    )


def build_cnn_nnx(seed: int = 0) -> nnx.Sequential:
    """Input NHWC (N, 8, 8, 1)."""
    w = cnn_weights(seed)
    return nnx.Sequential(
        _nnx_conv(w["conv1.w"], w["conv1.b"]), nnx.relu, _pool,
        _nnx_conv(w["conv2.w"], w["conv2.b"]), nnx.relu, flatten,
        _nnx_linear(w["fc1.w"], w["fc1.b"]), nnx.relu,
        _nnx_linear(w["fc2.w"], w["fc2.b"]),
    )


# -- linen ------------------------------------------------------------------------------------
def _linen_dense(w: np.ndarray, b: np.ndarray) -> dict[str, jax.Array]:
    return {"kernel": _dense_kernel(w), "bias": jnp.asarray(b)}


def _linen_conv(w: np.ndarray, b: np.ndarray) -> dict[str, jax.Array]:
    return {"kernel": _conv_kernel(w), "bias": jnp.asarray(b)}


def build_mlp_linen(seed: int = 0) -> tuple[linen.Module, dict[str, Any]]:
    w = mlp_weights(seed)
    module = linen.Sequential([linen.Dense(12), linen.relu, linen.Dense(8), linen.relu, linen.Dense(4)])
    params = {"layers_0": _linen_dense(w["fc1.w"], w["fc1.b"]),
              "layers_2": _linen_dense(w["fc2.w"], w["fc2.b"]),
              "layers_4": _linen_dense(w["fc3.w"], w["fc3.b"])}
    return module, {"params": params}


def build_cnn_linen(seed: int = 0) -> tuple[linen.Module, dict[str, Any]]:
    """Input NHWC (N, 8, 8, 1)."""
    w = cnn_weights(seed)
    module = linen.Sequential([
        linen.Conv(4, (3, 3), padding="VALID"), linen.relu,
        functools.partial(linen.max_pool, window_shape=(2, 2), strides=(2, 2)),
        linen.Conv(6, (3, 3), padding="VALID"), linen.relu, flatten,
        linen.Dense(5), linen.relu, linen.Dense(3),
    ])
    params = {"layers_0": _linen_conv(w["conv1.w"], w["conv1.b"]),
              "layers_3": _linen_conv(w["conv2.w"], w["conv2.b"]),
              "layers_6": _linen_dense(w["fc1.w"], w["fc1.b"]),
              "layers_8": _linen_dense(w["fc2.w"], w["fc2.b"])}
    return module, {"params": params}


# -- plain functions --------------------------------------------------------------------------
def build_mlp_fn(seed: int = 0) -> JaxFunction:
    w = {k: jnp.asarray(v) for k, v in mlp_weights(seed).items()}

    def mlp(x: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        dense1 = x @ w["fc1.w"].T + w["fc1.b"]
        relu1 = jax.nn.relu(dense1)
        dense2 = relu1 @ w["fc2.w"].T + w["fc2.b"]
        relu2 = jax.nn.relu(dense2)
        out = relu2 @ w["fc3.w"].T + w["fc3.b"]
        return out, {"dense1": dense1, "relu1": relu1, "dense2": dense2, "relu2": relu2, "dense3": out}

    return mlp


def _conv_nchw(x: jax.Array, k: jax.Array, b: jax.Array) -> jax.Array:
    out = jax.lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return out + b[None, :, None, None]


def build_cnn_fn(seed: int = 0) -> JaxFunction:
    """Input NCHW (N, 1, 8, 8), as the probe arrives; intermediates channels-first."""
    w = {k: jnp.asarray(v) for k, v in cnn_weights(seed).items()}

    def cnn(x: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        conv1 = _conv_nchw(x, w["conv1.w"], w["conv1.b"])
        relu1 = jax.nn.relu(conv1)
        pool1 = jax.lax.reduce_window(relu1, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        conv2 = _conv_nchw(pool1, w["conv2.w"], w["conv2.b"])
        relu2 = jax.nn.relu(conv2)
        dense1 = relu2.reshape(x.shape[0], -1) @ w["fc1.w"].T + w["fc1.b"]
        relu3 = jax.nn.relu(dense1)
        out = relu3 @ w["fc2.w"].T + w["fc2.b"]
        return out, {"conv1": conv1, "relu1": relu1, "pool1": pool1, "conv2": conv2, "relu2": relu2,
                     "dense1": dense1, "relu3": relu3, "dense2": out}

    return cnn


# -- for exporters ----------------------------------------------------------------------------
def jax_forward(model: object) -> Callable[[jax.Array], jax.Array]:
    """The plain forward ``x -> output`` of any builder's result (for jax2onnx and friends).
    The input layout is the model's own: NHWC for the nnx/linen CNNs, NCHW for ``build_cnn_fn``."""
    if isinstance(model, nnx.Module):
        return model
    if isinstance(model, tuple):
        module, variables = model
        return functools.partial(module.apply, variables)
    assert callable(model)
    return lambda x: model(x)[0]
