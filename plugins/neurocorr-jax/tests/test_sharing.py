"""Compiled captures and layer listings are shared by the providers of models of one structure.

Traces are counted by a Python side effect in the model, which runs only while JAX traces it
(``make_jaxpr`` for the listing, ``jax.jit`` for a capture), never when a compiled program
runs. Every value is checked against numpy with the model's own weights.
"""

import functools
import gc
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx

from jax_models import image_probe, mlp_numpy, nnx_mlp, vector_probe, weights
from neurocorr_core import compare
from neurocorr_jax import JaxProvider
from neurocorr_jax import provider as jax_provider

TRACES: list[int] = []


@pytest.fixture(autouse=True)
def fresh_cache():
    jax_provider.clear_cache()
    TRACES.clear()
    yield
    jax_provider.clear_cache()


class CountingNnx(nnx.Module):
    """The test MLP (weights of ``seed``), counting its traces."""

    def __init__(self, seed: int = 0, factor: float = 1.0) -> None:
        self.mlp = nnx_mlp(seed)
        self.factor = factor  # a static attribute: part of the structure

    def __call__(self, x: jax.Array) -> jax.Array:
        TRACES.append(1)
        return self.mlp(x * self.factor)


class CountingLinen(linen.Module):
    """The test MLP in linen (dense1 -> relu, sown as relu1 -> dense2), counting its traces."""

    factor: float = 1.0
    init_scale: float = 1.0

    @linen.compact
    def __call__(self, x: jax.Array, boost: float = 1.0) -> jax.Array:
        TRACES.append(1)
        x = x * boost
        # A new initialiser closure per module: it never runs in apply, so it must not matter.
        init = linen.initializers.normal(self.init_scale)
        h = jax.nn.relu(linen.Dense(7, name="dense1", kernel_init=init)(x * self.factor))
        self.sow("intermediates", "relu1", h)
        return linen.Dense(3, name="dense2", kernel_init=init)(h)


def linen_model(seed: int = 0, factor: float = 1.0) -> tuple[linen.Module, dict]:
    w = weights(seed)
    params = {"dense1": {"kernel": jnp.asarray(w["k1"]), "bias": jnp.asarray(w["b1"])},
              "dense2": {"kernel": jnp.asarray(w["k2"]), "bias": jnp.asarray(w["b2"])}}
    return CountingLinen(factor=factor), {"params": params}


def counting_fn(seed: int = 0):
    """A plain function with its own weights; every call of this builder is a new function
    of the same code."""
    w = {k: jnp.asarray(v) for k, v in weights(seed).items()}

    def mlp(x):
        TRACES.append(1)
        dense1 = x @ w["k1"] + w["b1"]
        relu1 = jax.nn.relu(dense1)
        dense2 = relu1 @ w["k2"] + w["b2"]
        return dense2, {"dense1": dense1, "relu1": relu1, "dense2": dense2}

    return mlp


def capture(model, names, *, channel_means=False, probe=None, **options):
    """A new provider's listing and one batch of ``names`` (a glob-free list of names)."""
    prov = JaxProvider(model, **options)
    x = vector_probe() if probe is None else probe
    prov.layers(x[:2])
    return prov, next(prov.activations([x], names, channel_means=channel_means))


def relu_of(seed: int, factor: float = 1.0) -> np.ndarray:
    return mlp_numpy(vector_probe() * factor, seed)["relu1"]


NNX_RELU, LINEN_RELU = "mlp.layers.1", "relu1"


def test_providers_of_one_nnx_model_trace_and_compile_once():
    model = CountingNnx(0)
    prov, out = capture(model, [NNX_RELU])
    assert len(TRACES) == 2  # the listing and the compiled capture
    again, out_again = capture(model, [NNX_RELU])
    assert len(TRACES) == 2  # neither listed nor compiled again
    assert again._compiled[(NNX_RELU,), False] is prov._compiled[(NNX_RELU,), False]
    for got in (out, out_again):
        np.testing.assert_allclose(got[NNX_RELU], relu_of(0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("build, relu", [(CountingNnx, NNX_RELU), (linen_model, LINEN_RELU)])
def test_other_weights_of_one_architecture_reuse_the_program_with_their_own_values(build, relu):
    _, out0 = capture(build(0), [relu])
    assert len(TRACES) == 2
    _, out1 = capture(build(1), [relu])
    assert len(TRACES) == 2  # the second model ran in the first one's compiled program
    assert len(jax_provider.PROGRAMS) == 1
    np.testing.assert_allclose(out0[relu], relu_of(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out1[relu], relu_of(1), rtol=1e-5, atol=1e-5)
    assert not np.allclose(out0[relu], out1[relu])  # the weights differ: so do the values


@pytest.mark.parametrize("build, relu", [(CountingNnx, NNX_RELU), (linen_model, LINEN_RELU)])
def test_a_static_setting_is_part_of_the_structure(build, relu):
    _, plain = capture(build(0), [relu])
    _, scaled = capture(build(0, factor=2.0), [relu])  # same weights, another static attribute
    assert len(TRACES) == 4 and len(jax_provider.PROGRAMS) == 2
    np.testing.assert_allclose(plain[relu], relu_of(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scaled[relu], relu_of(0, factor=2.0), rtol=1e-5, atol=1e-5)


def test_call_kwargs_are_part_of_the_structure():
    _, plain = capture(linen_model(0), [LINEN_RELU], call_kwargs={"boost": 1.0})
    _, boosted = capture(linen_model(0), [LINEN_RELU], call_kwargs={"boost": 2.0})
    capture(linen_model(1), [LINEN_RELU], call_kwargs={"boost": 2.0})
    assert len(TRACES) == 4 and len(jax_provider.PROGRAMS) == 2
    np.testing.assert_allclose(plain[LINEN_RELU], relu_of(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(boosted[LINEN_RELU], relu_of(0, factor=2.0), rtol=1e-5, atol=1e-5)


def test_a_bare_function_of_a_sequential_is_part_of_the_structure():
    w = weights(0)
    outs = {}
    for fn in (nnx.relu, nnx.tanh):
        linear = nnx.Linear(10, 7, rngs=nnx.Rngs(0))
        linear.kernel.set_value(jnp.asarray(w["k1"]))
        linear.bias.set_value(jnp.asarray(w["b1"]))
        outs[fn] = capture(nnx.Sequential(linear, fn), ["layers.1"])[1]["layers.1"]
    dense1 = mlp_numpy(vector_probe())["dense1"]
    np.testing.assert_allclose(outs[nnx.relu], np.maximum(dense1, 0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs[nnx.tanh], np.tanh(dense1), rtol=1e-5, atol=1e-5)


class CountNnx(nnx.Module):
    def __call__(self, x: jax.Array) -> jax.Array:
        TRACES.append(1)
        return x


class CountLinen(linen.Module):
    def __call__(self, x: jax.Array) -> jax.Array:
        TRACES.append(1)
        return x


def nnx_sequential(seed: int, floor: float = 0.0) -> nnx.Sequential:
    """A build with its own bare partial (a new object each build, equal arguments)."""
    w = weights(seed)
    layers = [nnx.Linear(10, 7, rngs=nnx.Rngs(0)), nnx.Linear(7, 3, rngs=nnx.Rngs(0))]
    for layer, k, b in zip(layers, ("k1", "k2"), ("b1", "b2"), strict=True):
        layer.kernel.set_value(jnp.asarray(w[k]))
        layer.bias.set_value(jnp.asarray(w[b]))
    return nnx.Sequential(CountNnx(), layers[0], functools.partial(jnp.maximum, floor), layers[1])


def linen_sequential(seed: int, floor: float = 0.0) -> tuple[linen.Module, dict]:
    """A build with its own bare partial and its own initialiser closures."""
    w = weights(seed)
    init = linen.initializers.normal(0.1)
    module = linen.Sequential([CountLinen(), linen.Dense(7, kernel_init=init), functools.partial(jnp.maximum, floor),
                               linen.Dense(3, kernel_init=init)])
    params = {"layers_1": {"kernel": jnp.asarray(w["k1"]), "bias": jnp.asarray(w["b1"])},
              "layers_3": {"kernel": jnp.asarray(w["k2"]), "bias": jnp.asarray(w["b2"])}}
    return module, {"params": params}


@pytest.mark.parametrize("build, relu", [(nnx_sequential, "layers.2"), (linen_sequential, "layers_2")])
def test_builds_of_one_sequential_share_with_their_own_partials_and_initialisers(build, relu):
    _, out0 = capture(build(0), [relu])
    _, out1 = capture(build(1), [relu])
    assert len(TRACES) == 2 and len(jax_provider.PROGRAMS) == 1
    np.testing.assert_allclose(out0[relu], relu_of(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out1[relu], relu_of(1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("build, relu", [(nnx_sequential, "layers.2"), (linen_sequential, "layers_2")])
def test_a_partial_with_other_arguments_is_another_structure(build, relu):
    _, out0 = capture(build(0), [relu])
    _, out1 = capture(build(0, floor=0.5), [relu])
    assert len(TRACES) == 4 and len(jax_provider.PROGRAMS) == 2
    dense1 = mlp_numpy(vector_probe())["dense1"]
    np.testing.assert_allclose(out0[relu], np.maximum(dense1, 0.0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out1[relu], np.maximum(dense1, 0.5), rtol=1e-5, atol=1e-5)


def test_different_plain_functions_never_share_even_with_the_same_code():
    _, out0 = capture(counting_fn(0), ["relu1"])
    _, out1 = capture(counting_fn(1), ["relu1"])
    assert len(TRACES) == 4 and len(jax_provider.PROGRAMS) == 2
    np.testing.assert_allclose(out0["relu1"], relu_of(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out1["relu1"], relu_of(1), rtol=1e-5, atol=1e-5)
    fn = counting_fn(2)
    capture(fn, ["relu1"])
    _, out2 = capture(fn, ["relu1"])
    assert len(TRACES) == 6  # the very same function object does share
    np.testing.assert_allclose(out2["relu1"], relu_of(2), rtol=1e-5, atol=1e-5)


def test_another_layer_set_or_mode_compiles_anew_once():
    capture(CountingNnx(0), [NNX_RELU])
    assert len(TRACES) == 2
    capture(CountingNnx(1), [NNX_RELU, "mlp.layers.0"])
    assert len(TRACES) == 3  # listed from the cache, a new layer set compiled
    capture(CountingNnx(2), [NNX_RELU], channel_means=True)
    assert len(TRACES) == 4  # the means mode is another program
    capture(CountingNnx(3), [NNX_RELU, "mlp.layers.0"])
    capture(CountingNnx(4), [NNX_RELU], channel_means=True)
    assert len(TRACES) == 4 and len(jax_provider.PROGRAMS) == 3


def test_the_layout_is_part_of_the_key():
    """One function run as NCHW and as NHWC: its last axis is W in one, C in the other."""

    def pool(x):
        TRACES.append(1)
        return x, {"pool1": x.mean(axis=3)}

    x = image_probe()
    _, nchw = capture(pool, ["pool1"], probe=x, layout="nchw")
    _, nhwc = capture(pool, ["pool1"], probe=x, layout="nhwc")
    assert len(TRACES) == 4 and len(jax_provider.PROGRAMS) == 2
    np.testing.assert_allclose(nchw["pool1"], x.mean(axis=3), rtol=1e-6)
    np.testing.assert_allclose(nhwc["pool1"], x.mean(axis=1), rtol=1e-6)


def test_another_probe_shape_is_listed_anew():
    capture(CountingNnx(0), [NNX_RELU])
    prov = JaxProvider(CountingNnx(1))
    layers = prov.layers(vector_probe(5))
    assert len(TRACES) == 3  # a batch of 5 is traced, not taken from the batch of 2's listing
    assert [la.name for la in layers][:2] == ["mlp.layers.0", "mlp.layers.1"]
    assert layers[1].shape == (7,)


def test_the_cache_is_bounded_least_recently_used_first(monkeypatch):
    monkeypatch.setattr(jax_provider.PROGRAMS, "size", 2)
    fns = [counting_fn(seed) for seed in range(3)]
    for fn in fns:
        capture(fn, ["relu1"])
    assert len(jax_provider.PROGRAMS) == 2 and len(TRACES) == 6
    _, out = capture(fns[2], ["relu1"])  # still cached
    assert len(TRACES) == 6
    _, out = capture(fns[0], ["relu1"])  # evicted: listed from its cache, compiled again
    assert len(TRACES) == 7 and len(jax_provider.PROGRAMS) == 2
    np.testing.assert_allclose(out["relu1"], relu_of(0), rtol=1e-5, atol=1e-5)


def test_lru_keeps_the_most_recently_used():
    lru = jax_provider.Lru[int](2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # "a" is now the most recent
    lru.put("c", 3)
    assert (lru.get("a"), lru.get("b"), lru.get("c"), len(lru)) == (1, None, 3, 2)


def test_a_cached_program_keeps_no_weights_alive():
    model = CountingNnx(0)
    kernel = weakref.ref(model.mlp.layers[0].kernel.get_value())
    prov, _ = capture(model, [NNX_RELU])
    held = weakref.ref(prov.adapter.params["mlp"]["layers"][0]["kernel"].get_value())
    del model, prov
    gc.collect()
    assert len(jax_provider.PROGRAMS) == 1
    assert kernel() is None and held() is None


class SetAttribute(nnx.Module):
    """A static attribute that cannot be hashed: nothing can be shared."""

    def __init__(self, seed: int) -> None:
        self.mlp = nnx_mlp(seed)
        self.tags = {"unhashable"}

    def __call__(self, x: jax.Array) -> jax.Array:
        TRACES.append(1)
        return self.mlp(x)


def test_an_unhashable_structure_compiles_per_provider_and_stays_correct():
    for seed in (0, 1):
        _, out = capture(SetAttribute(seed), [NNX_RELU])
        np.testing.assert_allclose(out[NNX_RELU], relu_of(seed), rtol=1e-5, atol=1e-5)
    assert len(TRACES) == 4 and len(jax_provider.PROGRAMS) == 0 and len(jax_provider.LISTINGS) == 0


def test_repeated_compares_of_one_architecture_compile_once():
    x = vector_probe()
    first = compare(CountingNnx(0), counting_fn(1), x, layers_a=NNX_RELU, layers_b="relu1")
    traces = len(TRACES)
    second = compare(CountingNnx(2), counting_fn(1), x, layers_a=NNX_RELU, layers_b="relu1")
    assert len(TRACES) == traces + 2  # only the new function (listing, capture); the nnx side is reused
    assert second.score.a_to_b != first.score.a_to_b  # another model A: another score
