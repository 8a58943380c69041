"""Small JAX models of every supported kind for the JAX provider's tests.

Weights come from fixed numpy generators, so each test can recompute the expected
activations with numpy alone. Image models: (N, 3, 8, 8) NCHW probes; MLPs: (N, 10).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen, nnx


def weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Dense MLP weights in Flax layout: kernels (in, out)."""
    rng = np.random.default_rng(seed)
    return {"k1": rng.normal(0, 0.5, (10, 7)).astype(np.float32), "b1": rng.normal(0, 0.1, 7).astype(np.float32),
            "k2": rng.normal(0, 0.5, (7, 3)).astype(np.float32), "b2": rng.normal(0, 0.1, 3).astype(np.float32)}


def mlp_numpy(x: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """The reference forward of every MLP below, float64."""
    w = {k: v.astype(np.float64) for k, v in weights(seed).items()}
    dense1 = x.astype(np.float64) @ w["k1"] + w["b1"]
    relu1 = np.maximum(dense1, 0)
    return {"dense1": dense1, "relu1": relu1, "dense2": relu1 @ w["k2"] + w["b2"]}


def _given(value: np.ndarray) -> Any:
    return lambda key, shape, dtype=jnp.float32: jnp.asarray(value, dtype).reshape(shape)


def nnx_mlp(seed: int = 0, dropout: float = 0.0) -> nnx.Sequential:
    """Linear -> relu -> Dropout -> Linear (Dropout inactive in inference mode)."""
    w = weights(seed)
    return nnx.Sequential(
        nnx.Linear(10, 7, kernel_init=_given(w["k1"]), bias_init=_given(w["b1"]), rngs=nnx.Rngs(0)),
        nnx.relu, nnx.Dropout(dropout, rngs=nnx.Rngs(1)),
        nnx.Linear(7, 3, kernel_init=_given(w["k2"]), bias_init=_given(w["b2"]), rngs=nnx.Rngs(0)))


def fn_mlp(seed: int = 0) -> Any:
    w = {k: jnp.asarray(v) for k, v in weights(seed).items()}

    def mlp(x: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        dense1 = x @ w["k1"] + w["b1"]
        relu1 = jax.nn.relu(dense1)
        dense2 = relu1 @ w["k2"] + w["b2"]
        return dense2, {"dense1": dense1, "relu1": relu1, "dense2": dense2}

    return mlp


class LinenMLP(linen.Module):
    """Compact linen MLP that sows its ReLU output as 'relu1'."""

    @linen.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        h = jax.nn.relu(linen.Dense(7, name="dense1")(x))
        self.sow("intermediates", "relu1", h)
        h = linen.Dropout(0.5, deterministic=not train)(h)
        return linen.Dense(3, name="dense2")(h)


def linen_mlp(seed: int = 0) -> tuple[linen.Module, dict[str, Any]]:
    w = weights(seed)
    params = {"dense1": {"kernel": jnp.asarray(w["k1"]), "bias": jnp.asarray(w["b1"])},
              "dense2": {"kernel": jnp.asarray(w["k2"]), "bias": jnp.asarray(w["b2"])}}
    return LinenMLP(), {"params": params}


class NnxCNN(nnx.Module):
    """A custom (non-Sequential) nnx module: conv -> BatchNorm -> relu (sown) -> pool ->
    Dropout -> a Sequential head. NHWC inside, as Flax convs are."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)

        def init(*shape: int) -> Any:  # numpy weights: no random initialiser to compile
            return _given(rng.normal(0, 0.3, shape).astype(np.float32))

        rngs = nnx.Rngs(seed)
        self.conv = nnx.Conv(3, 5, (3, 3), padding="VALID", kernel_init=init(3, 3, 3, 5), bias_init=init(5),
                             rngs=rngs)
        self.norm = nnx.BatchNorm(5, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.head = nnx.Sequential(
            nnx.Linear(5 * 3 * 3, 6, kernel_init=init(45, 6), bias_init=init(6), rngs=rngs), nnx.relu,
            nnx.Linear(6, 2, kernel_init=init(6, 2), bias_init=init(2), rngs=rngs))

    def __call__(self, x: jax.Array) -> jax.Array:
        h = jax.nn.relu(self.norm(self.conv(x)))
        self.sow(nnx.Intermediate, "relu1", h)
        h = nnx.max_pool(h, (2, 2), (2, 2))
        h = self.drop(h)
        return self.head(h.reshape(h.shape[0], -1))


def nnx_cnn(seed: int = 0) -> NnxCNN:
    return NnxCNN(seed)


class LinenCNN(linen.Module):
    """Compact linen CNN with BatchNorm (running statistics unless train=True)."""

    @linen.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        h = linen.Conv(5, (3, 3), padding="VALID")(x)
        h = linen.BatchNorm(use_running_average=not train)(h)
        h = jax.nn.relu(h)
        self.sow("intermediates", "relu1", h)
        h = linen.max_pool(h, (2, 2), (2, 2))
        h = h.reshape(h.shape[0], -1)
        h = linen.Dense(6)(h)
        self.sow("intermediates", "relu2", jax.nn.relu(h))
        return linen.Dense(2)(jax.nn.relu(h))


def linen_cnn(seed: int = 0) -> tuple[linen.Module, dict[str, Any]]:
    """Variables of the right shapes from numpy (running variances in [0.5, 1.5])."""
    module = LinenCNN()
    shapes = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
    rng = np.random.default_rng(seed)

    def fill(path: Any, leaf: Any) -> jax.Array:
        if path[-1].key == "var":
            return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), jnp.float32)
        return jnp.asarray(rng.normal(0, 0.3, leaf.shape), jnp.float32)

    return module, jax.tree_util.tree_map_with_path(fill, shapes)


def fn_cnn(seed: int = 0) -> Any:
    """A plain function on NCHW images (lax.conv's default layout)."""
    rng = np.random.default_rng(seed)
    k = jnp.asarray(rng.normal(0, 0.3, (5, 3, 3, 3)).astype(np.float32))
    dense = jnp.asarray(rng.normal(0, 0.3, (5, 4)).astype(np.float32))

    def cnn(x: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        conv1 = jax.lax.conv(x, k, (1, 1), "VALID")
        relu1 = jax.nn.relu(conv1)
        out = relu1.mean(axis=(2, 3)) @ dense
        return out, {"conv1": conv1, "relu1": relu1, "dense1": out}

    return cnn


def image_probe(n: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, 8, 8), dtype=np.float32)


def vector_probe(n: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, 10)).astype(np.float32)
