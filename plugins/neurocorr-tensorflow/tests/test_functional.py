"""Activation functions are layers in Keras too: ``keras.ops.relu``, ``keras.activations.gelu``
and ``keras.ops.sigmoid`` as nodes of a functional graph, and ``tf.nn.relu``/``keras.ops.relu``
called in a subclassed model's ``call``.

For each model: the values captured equal a hand-written numpy forward pass, and the model
scores 1.0 against its twin that uses ``keras.layers.ReLU``/``Activation`` layers (pearson,
every activation layer on both sides), constant (dead) neurons scoring 0 as they do against
the twin itself.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from numpy.lib.stride_tricks import sliding_window_view

from neurocorr_core import compare
from neurocorr_tensorflow import TensorFlowProvider

RNG = np.random.default_rng(0)


def probe(n: int = 48, shape: tuple[int, ...] = (1, 10, 10)) -> np.ndarray:
    return RNG.normal(size=(n, *shape)).astype(np.float32)


def captured(model: keras.Model, x: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    """The activation layers' names and values (channels-first), through the provider."""
    provider = TensorFlowProvider(model)
    names = [layer.name for layer in provider.layers(x[:2]) if layer.kind == "activation"]
    values = next(provider.activations([x], names))
    return names, [values[n] for n in names]


def assert_twins(functional: keras.Model, twin: keras.Model, x: np.ndarray, reference: list[np.ndarray]) -> None:
    names, values = captured(functional, x)
    twin_names, twin_values = captured(twin, x)
    assert len(values) == len(reference) == len(twin_values), (names, twin_names)
    for name, got, want, other in zip(names, values, reference, twin_values, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(other, want, rtol=1e-5, atol=1e-5, err_msg=name)
    assert_scores_one(functional, twin, x)


def assert_scores_one(functional: keras.Model, twin: keras.Model, x: np.ndarray) -> None:
    """Every neuron of the activation layers scores 1.0 against the twin; only a constant (dead)
    neuron scores 0, as it does against the twin itself, so the network score is the live share."""
    result = compare(functional, twin, x, metric="pearson")
    n, dead = result.value_a.size, sum(layer.dead for layer in result.layers_a)
    assert dead == sum(layer.dead for layer in result.layers_b)
    assert np.isclose(result.value_a, 1.0, atol=1e-5).sum() == n - dead
    assert result.score.symmetric == pytest.approx((n - dead) / n, abs=1e-5)
    itself = compare(twin, twin, x, metric="pearson")
    assert result.score.symmetric == pytest.approx(itself.score.symmetric, abs=1e-6)


# -- numpy reference ---------------------------------------------------------------------------
def conv(x: np.ndarray, layer: layers.Conv2D) -> np.ndarray:
    """A 'valid' or 'same' stride-1 convolution of NHWC ``x`` with the layer's HWIO kernel, in float64."""
    kernel, bias = (w.astype(np.float64) for w in layer.get_weights())
    if layer.padding == "same":
        ph, pw = kernel.shape[0] // 2, kernel.shape[1] // 2
        x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    windows = sliding_window_view(x.astype(np.float64), kernel.shape[:2], axis=(1, 2))  # (n, i, j, c, u, v)
    return np.einsum("nijcuv,uvco->nijo", windows, kernel) + bias


def dense(x: np.ndarray, layer: layers.Dense) -> np.ndarray:
    kernel, bias = (w.astype(np.float64) for w in layer.get_weights())
    return x @ kernel + bias


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, x * Phi(x), by the error function (keras.activations.gelu's default)."""
    return x * 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def nchw(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 3, 1, 2) if a.ndim == 4 else a


# -- a functional graph --------------------------------------------------------------------------
def functional_pair() -> tuple[keras.Model, keras.Model]:
    """conv -> keras.ops.relu -> conv -> keras.activations.gelu -> keras.ops.relu -> GAP -> dense ->
    keras.ops.sigmoid, and its twin with ReLU / Activation layers and the same weights."""
    def build(functions: bool) -> keras.Model:
        act = {"relu": keras.ops.relu, "gelu": keras.activations.gelu, "sigmoid": keras.ops.sigmoid} \
            if functions else {"relu": lambda t: layers.ReLU()(t), "gelu": lambda t: layers.Activation("gelu")(t),
                               "sigmoid": lambda t: layers.Activation("sigmoid")(t)}
        inputs = keras.Input((10, 10, 1))
        x = act["relu"](layers.Conv2D(6, 3, name="conv1")(inputs))
        x = act["relu"](act["gelu"](layers.Conv2D(8, 3, padding="same", name="conv2")(x)))
        x = layers.GlobalAveragePooling2D(name="gap")(x)
        return keras.Model(inputs, act["sigmoid"](layers.Dense(5, name="fc")(x)))

    keras.utils.set_random_seed(0)
    model, twin = build(True), build(False)
    twin.set_weights(model.get_weights())
    return model, twin


def test_keras_ops_in_a_functional_graph_are_layers_named_after_their_place():
    model, twin = functional_pair()
    x = probe()
    names, _ = captured(model, x)
    assert names == ["relu()", "gelu()", "relu()#1", "sigmoid()"]
    ops = {layer.name: layer.op for layer in TensorFlowProvider(model).layers(x[:2])}
    assert ops["gelu()"] == "gelu" and ops["relu()#1"] == "relu"
    h = x.transpose(0, 2, 3, 1).astype(np.float64)
    a1 = relu(conv(h, model.get_layer("conv1")))
    a2 = gelu(conv(a1, model.get_layer("conv2")))
    a3 = relu(a2)
    a4 = sigmoid(dense(a3.mean(axis=(1, 2)), model.get_layer("fc")))
    assert_twins(model, twin, x, [nchw(a) for a in (a1, a2, a3, a4)])


def test_functions_inside_a_nested_model_carry_its_name():
    inner_in = keras.Input((6,))
    block = keras.Model(inner_in, keras.ops.relu(layers.Dense(4, name="fc")(inner_in)), name="block")
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.ops.tanh(block(keras.ops.relu(inputs))))
    names = [layer.name for layer in TensorFlowProvider(model).layers(probe(2, (6,)))]
    assert names == ["relu()", "block/fc", "block/relu()", "block", "tanh()"]  # block: the nested model


# -- a subclassed model --------------------------------------------------------------------------
class Block(keras.layers.Layer):
    """A conv whose call ends in tf.nn.relu (called twice by the model: ``block/relu()#1``)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.conv = layers.Conv2D(6, 3, padding="same")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.nn.relu(self.conv(x))


class Net(keras.Model):
    """keras.ops.relu in the model's call, a Block called twice, keras.ops.sigmoid at the end; the
    ReLU layer and Dense(activation='relu') are layers already: their inner calls are not recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = layers.Conv2D(6, 3)
        self.block = Block()
        self.fc = layers.Dense(5)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        x = keras.ops.relu(self.stem(x))
        x = self.block(self.block(x))
        return keras.ops.sigmoid(self.fc(keras.ops.mean(x, axis=(1, 2))))


class TwinBlock(Block):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.act = layers.ReLU()

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.act(self.conv(x))


class TwinNet(Net):
    def __init__(self) -> None:
        super().__init__()
        self.block = TwinBlock()
        self.act = layers.Activation("relu")
        self.out = layers.Activation("sigmoid")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        x = self.act(self.stem(x))
        x = self.block(self.block(x))
        return self.out(self.fc(keras.ops.mean(x, axis=(1, 2))))


def test_tf_nn_relu_and_keras_ops_in_a_subclassed_call_are_layers():
    keras.utils.set_random_seed(1)
    model, twin = Net(), TwinNet()
    x = probe()
    nhwc = x.transpose(0, 2, 3, 1)
    model(nhwc[:1])
    twin(nhwc[:1])
    for mine, theirs in ((model.stem, twin.stem), (model.block.conv, twin.block.conv), (model.fc, twin.fc)):
        theirs.set_weights(mine.get_weights())
    names, _ = captured(model, x)
    assert names == ["relu()", "block/relu()", "block/relu()#1", "sigmoid()"]
    h = nhwc.astype(np.float64)
    a1 = relu(conv(h, model.stem))
    a2 = relu(conv(a1, model.block.conv))
    a3 = relu(conv(a2, model.block.conv))
    a4 = sigmoid(dense(a3.mean(axis=(1, 2)), model.fc))
    assert_twins(model, twin, x, [nchw(a) for a in (a1, a2, a3, a4)])


def test_keras_layers_own_activations_are_not_recorded_twice():
    """ReLU and Dense(activation=...) call keras.ops.relu inside: only the layer is listed."""
    class Plain(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.fc = layers.Dense(4, activation="relu")
            self.act = layers.ReLU()

        def call(self, x: tf.Tensor) -> tf.Tensor:
            return self.act(self.fc(x))

    listed = [(layer.name, layer.op) for layer in TensorFlowProvider(Plain()).layers(probe(2, (3,)))]
    assert listed == [("fc", "Dense+relu"), ("act", "ReLU")]


def test_a_chosen_function_layer_alone_and_its_channel_means():
    keras.utils.set_random_seed(2)
    model, x = Net(), probe(8)
    model(x[:1].transpose(0, 2, 3, 1))
    provider = TensorFlowProvider(model)
    provider.layers(x[:2])
    full = next(provider.activations([x], ["block/relu()#1"]))
    means = next(provider.activations([x], ["block/relu()#1"], channel_means=True))
    assert list(full) == ["block/relu()#1"] and full["block/relu()#1"].shape == (8, 6, 8, 8)
    np.testing.assert_allclose(means["block/relu()#1"], full["block/relu()#1"].mean(axis=(2, 3)),
                               rtol=1e-5, atol=1e-6)
