"""Layers inside nested functional and Sequential models: named ``outer/inner``, captured by one
sub-model of the flat graph, equal to what Keras computes model by model."""

from collections import Counter

import keras
import numpy as np
import pytest
from keras import layers

from neurocorr_core import NeurocorrError
from neurocorr_core.selection import select_layers
from neurocorr_tensorflow import TensorFlowProvider
from neurocorr_testing import ProviderConformance
from tf_models import image_probe, nested_cnn

NESTED_NAMES = ["stem", "block1/conv", "block1/relu", "block1/pair/conv", "block1/pair/relu", "block1/pair",
                "block1", "block2/conv", "block2/act", "block2/pool", "block2", "gap", "fc"]


def cut(model: keras.Model, name: str, x: np.ndarray) -> np.ndarray:
    """Keras' own output of ``model``'s layer ``name`` (called once in ``model``) for inputs ``x``
    (``inputs``: a nested Sequential's ``input`` is the tensor the outer model feeds it)."""
    return np.asarray(keras.Model(model.inputs[0], model.get_layer(name).output)(x))


def keras_reference(model: keras.Model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer output of :func:`nested_cnn` (NHWC), one model at a time: each nested model is
    fed what Keras computes for its input and cut at its own layers."""
    block1, block2 = model.get_layer("block1"), model.get_layer("block2")
    pair = block1.get_layer("pair")
    stem = cut(model, "stem", x)
    relu = cut(block1, "relu", stem)
    out = {"stem": stem, "block1/conv": cut(block1, "conv", stem), "block1/relu": relu,
           "block1/pair/conv": cut(pair, "conv", relu), "block1/pair/relu": cut(pair, "relu", relu),
           "block1/pair": np.asarray(pair(relu)), "block1": np.asarray(block1(stem))}
    out.update({f"block2/{name}": cut(block2, name, out["block1"]) for name in ("conv", "act", "pool")})
    out.update(block2=np.asarray(block2(out["block1"])), gap=cut(model, "gap", x), fc=np.asarray(model(x)))
    return out


def nchw(out: np.ndarray) -> np.ndarray:
    return out.transpose(0, 3, 1, 2) if out.ndim == 4 else out


def dense(layer: keras.layers.Layer, x: np.ndarray) -> np.ndarray:
    kernel, bias = layer.get_weights()
    return x.astype(np.float64) @ kernel + bias


# -- names, depth, kinds ------------------------------------------------------------------------
def test_inner_layers_are_listed_by_path_in_forward_order():
    infos = TensorFlowProvider(nested_cnn()).layers(image_probe()[:2])
    assert [la.name for la in infos] == NESTED_NAMES
    assert [la.depth for la in infos] == list(range(len(NESTED_NAMES)))
    shapes = {la.name: la.shape for la in infos}
    assert shapes["block1/conv"] == (5, 6, 6) and shapes["block1/pair"] == (4, 6, 6)  # channels-first
    assert shapes["block2/pool"] == shapes["block2"] == (6, 2, 2) and shapes["fc"] == (3,)
    ops = {la.name: la.op for la in infos}
    assert (ops["block1"], ops["block2"], ops["block2/act"]) == ("Sequential", "Functional", "relu")


def test_kinds_select_inner_layers():
    infos = TensorFlowProvider(nested_cnn()).layers(image_probe()[:2])
    conv = [la.name for la in select_layers(infos, "kind:conv", "nested")]
    act = [la.name for la in select_layers(infos, "kind:activation", "nested")]
    assert conv == ["stem", "block1/conv", "block1/pair/conv", "block2/conv"]
    assert act == ["block1/relu", "block1/pair/relu", "block2/act"]
    assert [la.name for la in select_layers(infos, "block1/pair/*", "nested")] == ["block1/pair/conv",
                                                                                   "block1/pair/relu"]


# -- values, in both views ----------------------------------------------------------------------
@pytest.mark.parametrize("channel_means", [False, True])
def test_inner_activations_equal_keras_model_by_model(channel_means):
    model, x = nested_cnn(), image_probe()
    expected = keras_reference(model, x.transpose(0, 2, 3, 1))
    got = next(TensorFlowProvider(model).activations([x], NESTED_NAMES, channel_means=channel_means))
    assert list(got) == NESTED_NAMES
    for name in NESTED_NAMES:
        own = expected[name].astype(np.float64)
        want = (own.mean(axis=(1, 2)) if own.ndim == 4 else own) if channel_means else nchw(own)
        assert got[name].dtype == np.float32 and got[name].shape == want.shape, name
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6, err_msg=name)


def test_sequential_inside_sequential_matches_numpy():
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([layers.Dense(6, name="d2"), layers.ReLU(name="r")], name="inner")
    model = keras.Sequential([layers.Dense(8, name="d1"), inner, layers.Dense(3, name="out")])
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    prov = TensorFlowProvider(model)  # no Input anywhere: built for the probe
    assert [la.name for la in prov.layers(x[:2])] == ["d1", "inner/d2", "inner/r", "inner", "out"]
    got = next(prov.activations([x], ["inner/d2", "inner/r", "out"]))
    d2 = dense(inner.get_layer("d2"), dense(model.get_layer("d1"), x))
    np.testing.assert_allclose(got["inner/d2"], d2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["inner/r"], np.maximum(d2, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["out"], dense(model.get_layer("out"), np.maximum(d2, 0)), rtol=1e-5, atol=1e-6)


def test_a_saved_nested_model_keeps_its_inner_layers(tmp_path):
    model, x = nested_cnn(), image_probe()
    model.save(tmp_path / "nested.keras")
    prov = TensorFlowProvider(tmp_path / "nested.keras")
    assert [la.name for la in prov.layers(x[:2])] == NESTED_NAMES
    got = next(prov.activations([x], ["block1/pair/relu"]))["block1/pair/relu"]
    expected = keras_reference(model, x.transpose(0, 2, 3, 1))["block1/pair/relu"]
    np.testing.assert_allclose(got, nchw(expected), rtol=1e-5, atol=1e-6)


# -- one forward pass ---------------------------------------------------------------------------
def test_one_flat_sub_model_and_one_forward_pass_per_batch():
    model, x = nested_cnn(), image_probe()
    prov = TensorFlowProvider(model)
    names = ["block1/pair/conv", "block2/act", "fc"]
    first = next(prov.activations([x[:4]], names))
    key = (tuple(names), False)
    assert list(prov.backend._subs) == [key], "one sub-model for the layer set"
    calls = []
    forward = prov.backend._subs[key]
    prov.backend._subs[key] = lambda b: calls.append(len(b)) or forward(b)
    outs = list(prov.activations([x[:4], x[4:8], x[8:]], names))
    assert calls == [4, 4, 4], "one call of the sub-model per batch, over all layers"
    np.testing.assert_array_equal(outs[0]["block2/act"], first["block2/act"])

    # the sub-model runs every layer once: the nested models are replayed layer by layer,
    # not called as well (which would compute their layers a second time)
    sub = prov.backend._sub_model(tuple(names), prov._is_last, False)
    ops = Counter(node.operation for nodes in sub._nodes_by_depth.values() for node in nodes
                  if not node.is_input)
    assert not any(isinstance(op, keras.Model) for op in ops)
    leaves = [op for op in ops if isinstance(op, keras.layers.Layer)]
    assert sorted(op.name for op in leaves) == sorted(["stem", "conv", "relu", "conv", "relu", "conv", "act",
                                                       "pool", "gap", "fc"])
    assert all(ops[op] == 1 for op in leaves)
    upto = prov.backend._sub_model(("block1/pair/conv",), prov._is_last, False)
    kept = {node.operation.name for nodes in upto._nodes_by_depth.values() for node in nodes}
    assert "pool" not in kept and "fc" not in kept, "layers after the last chosen one are left out"


def test_the_users_model_is_left_as_it_was():
    model = nested_cnn()
    every = model._flatten_layers(include_self=True, recursive=True)
    before = [(la.name, len(la._inbound_nodes), len(la._outbound_nodes)) for la in every]
    prov = TensorFlowProvider(model)
    prov.layers(image_probe()[:2])
    next(prov.activations([image_probe()], NESTED_NAMES, channel_means=True))
    assert [(la.name, len(la._inbound_nodes), len(la._outbound_nodes)) for la in every] == before
    pair = model.get_layer("block1").get_layer("pair")
    assert tuple(pair.get_layer("conv").output.shape) == (None, 6, 6, 4)  # still one output


# -- shared and other nested models ---------------------------------------------------------------
def shared_block_model() -> keras.Model:
    """The nested model ``block`` and the ReLU ``act`` are each called twice."""
    keras.utils.set_random_seed(0)
    block = keras.Sequential([keras.Input((4,)), layers.Dense(4, name="dense"), layers.ReLU(name="relu")],
                             name="block")
    act = layers.ReLU(name="act")
    inputs = keras.Input((4,))
    h = act(block(inputs))
    h = act(block(layers.Dense(4, name="mid")(h)))
    return keras.Model(inputs, layers.Dense(2, name="head")(h))


def test_each_call_of_a_shared_nested_model_has_its_own_names():
    model = shared_block_model()
    x = np.random.default_rng(2).normal(size=(6, 4)).astype(np.float32)
    prov = TensorFlowProvider(model)
    assert [la.name for la in prov.layers(x[:2])] == [
        "block/dense", "block/relu", "block", "act", "mid", "block/dense#1", "block/relu#1", "block#1",
        "act#1", "head"]
    got = next(prov.activations([x], ["block/dense", "block/dense#1", "block/relu#1", "act#1", "head"]))
    inner = model.get_layer("block").get_layer("dense")
    first = dense(inner, x)
    second = dense(inner, dense(model.get_layer("mid"), np.maximum(first, 0)))  # same weights
    np.testing.assert_allclose(got["block/dense"], first, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["block/dense#1"], second, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["block/relu#1"], np.maximum(second, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["act#1"], np.maximum(second, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["head"], np.asarray(model(x)), rtol=1e-5, atol=1e-6)


def test_a_nested_model_with_two_inputs_and_two_outputs():
    keras.utils.set_random_seed(0)
    a, b = keras.Input((4,)), keras.Input((4,))
    total = layers.Add(name="add")([a, b])
    two = keras.Model([a, b], [layers.Dense(3, name="d")(total), total], name="two")
    inputs = keras.Input((4,))
    first, second = two([inputs, layers.Dense(4, name="pre")(inputs)])
    doubled = keras.ops.multiply(first, 2.0)  # an op, not a layer: not listed
    model = keras.Model(inputs, layers.Dense(2, name="head")(layers.Concatenate(name="cat")([doubled, second])))
    x = np.random.default_rng(4).normal(size=(5, 4)).astype(np.float32)
    prov = TensorFlowProvider(model)
    # "two" returns two tensors, so it is no layer of its own; its layers are
    assert [la.name for la in prov.layers(x[:2])] == ["pre", "two/add", "two/d", "cat", "head"]
    got = next(prov.activations([x], ["two/d", "head"]))
    pre = np.asarray(model.get_layer("pre")(x))
    expected = keras.Model(two.inputs, two.get_layer("d").output)([x, pre])
    np.testing.assert_allclose(got["two/d"], np.asarray(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["head"], np.asarray(model(x)), rtol=1e-5, atol=1e-6)


def test_a_subclassed_model_inside_stays_one_layer():
    class Doubled(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="doubled")
            self.fc = layers.Dense(3, name="fc")

        def call(self, x):
            return self.fc(x) * 2

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, layers.ReLU(name="relu")(Doubled()(inputs)))
    x = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)
    prov = TensorFlowProvider(model)
    assert [la.name for la in prov.layers(x[:2])] == ["doubled", "relu"]
    np.testing.assert_allclose(next(prov.activations([x], ["relu"]))["relu"], np.asarray(model(x)),
                               rtol=1e-5, atol=1e-6)


def test_an_unknown_inner_name_lists_the_layers():
    prov = TensorFlowProvider(nested_cnn())
    with pytest.raises(NeurocorrError, match=r"no capturable layer 'block1/nope'; layers: stem, block1/conv"):
        next(prov.activations([image_probe()], ["block1/nope"]))


class TestNested(ProviderConformance):
    provider = TensorFlowProvider

    def make_model(self):
        return nested_cnn()

    def make_probe(self):
        return image_probe()


def test_a_keras_applications_base_inside_a_classifier():
    """Transfer learning's usual shape: a whole keras.applications network (built here, no
    weights downloaded) as one layer of a small classifier; its inner ReLUs are captured as the
    base model alone computes them."""
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35)
    inputs = keras.Input((32, 32, 3))
    head = layers.Dense(3)(layers.GlobalAveragePooling2D()(base(inputs)))
    model = keras.Model(inputs, head)
    x = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    provider = TensorFlowProvider(model)
    chosen = [la.name for la in select_layers(provider.layers(x[:2]), "kind:activation", "model")]
    assert len(chosen) == 35 and all(name.startswith(f"{base.name}/") for name in chosen)
    got = next(provider.activations([x], chosen))
    inner = [base.get_layer(name.split("/", 1)[1]).output for name in chosen]
    reference = keras.Model(base.input, inner)(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), training=False)
    for name, ref in zip(chosen, reference, strict=True):
        np.testing.assert_allclose(got[name], np.asarray(ref).transpose(0, 3, 1, 2), rtol=1e-6, atol=1e-6,
                                   err_msg=name)


def test_a_keras_without_the_methods_the_replay_uses_gets_a_clear_error(monkeypatch):
    from keras.src.models.functional import Functional

    monkeypatch.delattr(Functional, "_standardize_inputs")
    x = image_probe()[:2]
    with pytest.raises(NeurocorrError, match=r"has no Functional\._standardize_inputs.*tested with Keras 3\.15"):
        TensorFlowProvider(nested_cnn()).layers(x)
