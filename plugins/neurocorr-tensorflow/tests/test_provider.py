"""Behaviour of the tensorflow provider beyond the conformance suite: layouts, kinds, depth,
SavedModels, one sub-model per batch, and every error a user can cause."""

import re
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from numpy.lib.stride_tricks import sliding_window_view

from neurocorr_core import NeurocorrError, PluginManager, open_model
from neurocorr_core.selection import select_layers
from neurocorr_tensorflow import TensorFlowProvider
from tf_models import SharedCalls, Subclassed, functional_cnn, saved


def probe(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def layer_output(model: keras.Model, name: str, x: np.ndarray) -> np.ndarray:
    """What Keras itself computes for one layer, in the model's own layout."""
    return np.asarray(keras.Model(model.inputs[0], model.get_layer(name).output)(x))


# -- layouts ---------------------------------------------------------------------------------
def test_channels_last_model_gets_nhwc_and_returns_nchw():
    model, x = functional_cnn(), probe(5, 1, 8, 8)
    out = next(TensorFlowProvider(model).activations([x], ["conv1", "act1", "gap", "fc"]))
    nhwc = x.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(out["conv1"], layer_output(model, "conv1", nhwc).transpose(0, 3, 1, 2),
                               rtol=1e-5, atol=1e-6)
    assert out["act1"].shape == (5, 4, 8, 8) and out["act1"].flags.c_contiguous
    assert out["gap"].shape == (5, 6) and out["fc"].shape == (5, 3)


def test_layout_override_feeds_the_probe_as_given():
    model, x = functional_cnn(), probe(5, 1, 8, 8)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    auto = next(TensorFlowProvider(model).activations([x], ["conv2"]))["conv2"]
    given = next(TensorFlowProvider(model, layout="nchw").activations([nhwc], ["conv2"]))["conv2"]
    forced = next(TensorFlowProvider(model, layout="nhwc").activations([x], ["conv2"]))["conv2"]
    np.testing.assert_array_equal(given, auto)
    np.testing.assert_array_equal(forced, auto)


def test_channels_first_model_is_fed_nchw():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2, 8, 8))
    model = keras.Model(inputs, layers.Conv2D(3, 3, data_format="channels_first", name="conv")(inputs))
    x = probe(4, 2, 8, 8)
    out = next(TensorFlowProvider(model).activations([x], ["conv"]))["conv"]
    np.testing.assert_allclose(out, layer_output(model, "conv", x), rtol=1e-5, atol=1e-6)


def test_conv1d_outputs_leave_channels_first():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((10, 2))  # (length, channels)
    model = keras.Model(inputs, layers.Conv1D(5, 3, name="conv")(inputs))
    x = probe(4, 2, 10)  # canonical (N, C, L)
    prov = TensorFlowProvider(model)
    assert prov.layers(x[:2])[0].shape == (5, 8)
    out = next(prov.activations([x], ["conv"]))["conv"]
    np.testing.assert_allclose(out, layer_output(model, "conv", x.transpose(0, 2, 1)).transpose(0, 2, 1),
                               rtol=1e-5, atol=1e-6)


def test_unknown_layout_is_refused():
    with pytest.raises(NeurocorrError, match="unknown layout 'nwhc'.*auto, nchw, nhwc"):
        TensorFlowProvider(functional_cnn(), layout="nwhc")


# -- layers: kinds, depth, capture ------------------------------------------------------------
def test_activation_layers_are_named_by_their_function():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    x = layers.Activation("relu", name="a")(layers.Dense(3, name="d")(inputs))
    model = keras.Model(inputs, layers.Activation("softmax", name="s")(x))
    found = {la.name: (la.kind, la.op) for la in TensorFlowProvider(model).layers(probe(2, 4))}
    assert found == {"d": ("dense", "Dense"), "a": ("activation", "relu"), "s": ("other", "softmax")}


def test_a_fused_activation_decides_the_kind():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((1, 6, 6))
    x = layers.Conv2D(2, 3, activation="relu6", data_format="channels_first", name="c")(inputs)
    x = layers.Dense(3, activation="tanh", name="d")(layers.Flatten(name="f")(x))
    model = keras.Model(inputs, layers.Dense(2, activation="softmax", name="s")(x))
    found = {la.name: (la.kind, la.op) for la in TensorFlowProvider(model).layers(probe(2, 1, 6, 6))}
    assert found == {"c": ("activation", "Conv2D+relu6"), "f": ("other", "Flatten"),
                     "d": ("activation", "Dense+tanh"), "s": ("dense", "Dense+softmax")}


def test_depth_is_topological_in_a_branched_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    left = layers.Dense(3, name="left")(inputs)
    right = layers.Dense(3, name="right")(layers.Dense(5, name="pre")(inputs))
    merged = layers.ReLU(name="relu")(layers.Add(name="add")([right, left]))
    model = keras.Model(inputs, layers.Dense(2, name="out")(merged))
    depth = {la.name: la.depth for la in TensorFlowProvider(model).layers(probe(2, 4))}
    assert depth["pre"] < depth["right"] < depth["add"]
    assert depth["left"] < depth["add"] < depth["relu"] < depth["out"]


def test_one_sub_model_and_one_forward_pass_per_batch():
    prov = TensorFlowProvider(functional_cnn())
    x, names = probe(9, 1, 8, 8), ["conv1", "relu2", "fc"]
    next(prov.activations([x[:3]], names))
    key = (tuple(names), False)  # (layers, channel means)
    assert list(prov.backend._subs) == [key], "one sub-model for the layer set"
    calls = []
    forward = prov.backend._subs[key]
    prov.backend._subs[key] = lambda b: calls.append(len(b)) or forward(b)
    outs = list(prov.activations([x[:3], x[3:6], x[6:]], names))
    assert calls == [3, 3, 3], "one forward pass of the sub-model per batch, over all layers"
    assert all(set(out) == set(names) for out in outs)
    prov.close()
    assert prov.backend._subs == {}
    np.testing.assert_array_equal(next(prov.activations([x[:3]], names))["fc"], outs[0]["fc"])


def test_subclassed_sublayers_are_named_by_attribute_and_match_keras():
    keras.utils.set_random_seed(0)
    model, x = Subclassed(), probe(3, 1, 8, 8)
    prov = TensorFlowProvider(model)
    assert [la.name for la in prov.layers(x[:2])] == ["conv", "act", "flat", "fc"]
    out = next(prov.activations([x], ["act", "fc"]))
    nhwc = x.transpose(0, 2, 3, 1)
    expected = np.maximum(np.asarray(model.conv(nhwc)), 0).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(out["act"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["fc"], np.asarray(model(nhwc)), rtol=1e-5, atol=1e-6)
    assert "call" not in vars(model.conv), "the recording wrapper is removed after the pass"


SHARED_NAMES = ["conv1", "act", "conv2", "act#1", "conv2#1", "act#2", "gap", "fc"]


def shared_calls_by_hand(model: SharedCalls, x: np.ndarray) -> dict[str, np.ndarray]:
    """SharedCalls' forward pass in numpy from its weights (NCHW), every call's output."""
    def conv(layer, v):
        kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())  # (3, 3, in, out)
        windows = sliding_window_view(np.pad(v, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3))
        return np.einsum("nchwij,ijco->nohw", windows, kernel) + bias[:, None, None]

    out = {"conv1": conv(model.conv1, x.astype(np.float64))}
    out["act"] = np.maximum(out["conv1"], 0)
    out["conv2"] = conv(model.conv2, out["act"])
    out["act#1"] = np.maximum(out["conv2"], 0)
    out["conv2#1"] = conv(model.conv2, out["act#1"])
    out["act#2"] = np.maximum(out["conv2#1"], 0)
    out["gap"] = out["act#2"].mean(axis=(2, 3))
    weights, bias = model.fc.get_weights()
    out["fc"] = out["gap"] @ weights + bias
    return out


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_every_call_of_a_shared_sublayer_is_a_layer(data_format):
    keras.utils.set_random_seed(0)
    model, x = SharedCalls(data_format), probe(5, 2, 6, 6)
    prov = TensorFlowProvider(model)
    found = prov.layers(x[:2])
    assert [la.name for la in found] == SHARED_NAMES, "one layer per call, in the order calls finish"
    assert [la.depth for la in found] == list(range(len(SHARED_NAMES)))
    info = {la.name: la for la in found}
    for name in ("act#1", "act#2"):
        assert (info[name].kind, info[name].op, info[name].shape) == ("activation", "ReLU", (4, 6, 6))
    assert (info["conv2#1"].kind, info["conv2#1"].op) == ("conv", "Conv2D")
    expected = shared_calls_by_hand(model, x)
    raw = next(prov.activations([x], SHARED_NAMES))
    means = next(prov.activations([x], SHARED_NAMES, channel_means=True))
    for name in SHARED_NAMES:  # the position view's whole maps and the channel view's means
        np.testing.assert_allclose(raw[name], expected[name], rtol=1e-4, atol=1e-5, err_msg=name)
        mean = expected[name].mean(axis=(2, 3)) if expected[name].ndim == 4 else expected[name]
        np.testing.assert_allclose(means[name], mean, rtol=1e-4, atol=1e-5, err_msg=name)
    alone = next(prov.activations([x], ["act#1"]))
    assert list(alone) == ["act#1"], "a later call alone is captured without the others"
    np.testing.assert_allclose(alone["act#1"], expected["act#1"], rtol=1e-4, atol=1e-5)
    assert "call" not in vars(model.act), "the recording wrapper is removed after the pass"


def test_kind_activation_selects_every_call_of_a_shared_activation():
    keras.utils.set_random_seed(0)
    found = TensorFlowProvider(SharedCalls()).layers(probe(2, 1, 6, 6))
    assert [la.name for la in select_layers(found, "kind:activation", "model")] == ["act", "act#1", "act#2"]


def test_an_unknown_call_lists_the_layers_of_a_forward_pass():
    keras.utils.set_random_seed(0)
    prov = TensorFlowProvider(SharedCalls())
    listing = re.escape(", ".join(SHARED_NAMES))
    for name in ("act#5", "nope"):
        with pytest.raises(NeurocorrError, match=rf"no layer '{name}' on this batch; .* are: {listing}$"):
            next(prov.activations([probe(3, 1, 6, 6)], ["act", name]))


def test_a_sublayer_held_in_two_places_is_named_once():
    class Block(keras.layers.Layer):
        def __init__(self, act) -> None:
            super().__init__()
            self.dense, self.act = layers.Dense(3), act

        def call(self, x):
            return self.act(self.dense(x))

    class Model(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.act = layers.ReLU()
            self.block = Block(self.act)

        def call(self, x):
            return self.block(self.act(x))

    keras.utils.set_random_seed(0)
    model, x = Model(), probe(4, 5)
    prov = TensorFlowProvider(model)
    assert [la.name for la in prov.layers(x[:2])] == ["act", "block/dense", "act#1", "block"]
    out = next(prov.activations([x], ["act#1", "block"]))
    np.testing.assert_allclose(out["act#1"], np.asarray(model(x)), rtol=1e-5, atol=1e-6)
    assert "call" not in vars(model.act)


def test_a_nested_sequential_built_by_the_first_pass_counts_only_real_calls():
    class Twice(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.block = keras.Sequential([layers.Dense(4, name="d"), layers.ReLU(name="r")])
            self.fc = layers.Dense(2)

        def call(self, x):
            return self.fc(self.block(self.block(x)))

    keras.utils.set_random_seed(0)
    model, x = Twice(), probe(3, 4)
    prov = TensorFlowProvider(model)  # the block has no Input: Keras builds it symbolically in the pass
    assert [la.name for la in prov.layers(x)] == ["block/d", "block/r", "block", "block/d#1", "block/r#1",
                                                  "block#1", "fc"]
    out = next(prov.activations([x], ["block/d#1", "block#1"]))
    once = np.asarray(model.block(x))
    np.testing.assert_allclose(out["block/d#1"], np.asarray(model.block.get_layer("d")(once)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["block#1"], np.asarray(model.block(once)), rtol=1e-5, atol=1e-6)


def test_shared_calls_are_named_as_in_torch():
    torch = pytest.importorskip("torch")
    pytest.importorskip("neurocorr_torch")
    from neurocorr_torch import TorchProvider

    class Twin(torch.nn.Module):  # SharedCalls in torch: one nn.ReLU, conv2 used twice
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.act = torch.nn.ReLU()
            self.gap = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x):
            x = self.act(self.conv1(x))
            x = self.act(self.conv2(x))
            x = self.act(self.conv2(x))
            return self.fc(self.gap(x))

    keras.utils.set_random_seed(0)
    x = probe(2, 1, 6, 6)
    tf_layers = TensorFlowProvider(SharedCalls()).layers(x)
    torch_layers = [la for la in TorchProvider(Twin()).layers(x) if not la.name.startswith("gap.")]
    assert [la.name for la in tf_layers] == [la.name for la in torch_layers] == SHARED_NAMES
    relus = [[la.name for la in select_layers(found, "kind:activation", "model")]
             for found in (tf_layers, torch_layers)]
    assert relus[0] == relus[1] == ["act", "act#1", "act#2"]


def test_subclassed_without_sublayers_says_what_is_supported():
    class Bare(keras.Model):
        def call(self, x):
            return x * 2

    with pytest.raises(NeurocorrError,
                       match="without tracked sublayers.*Supported: Sequential and functional"):
        TensorFlowProvider(Bare())


# -- files ------------------------------------------------------------------------------------
def test_savedmodel_scopes_reproduce_the_keras_layers():
    model, x = functional_cnn(), probe(6, 1, 8, 8)
    keras_prov, sm_prov = TensorFlowProvider(model), TensorFlowProvider(saved("savedmodel"))
    keras_layers, sm_layers = keras_prov.layers(x[:2]), sm_prov.layers(x[:2])
    assert [(la.kind, la.shape) for la in sm_layers] == [(la.kind, la.shape) for la in keras_layers]
    a = next(keras_prov.activations([x], [la.name for la in keras_layers]))
    b = next(sm_prov.activations([x], [la.name for la in sm_layers]))
    for la, lb in zip(keras_layers, sm_layers, strict=True):
        assert lb.name.startswith(la.name)  # scope names may carry a suffix (conv1_1)
        np.testing.assert_allclose(b[lb.name], a[la.name], rtol=1e-5, atol=1e-6, err_msg=la.name)


def test_loaded_savedmodel_object_is_accepted():
    loaded = tf.saved_model.load(saved("savedmodel"))
    assert TensorFlowProvider.accepts(loaded)
    layers_ = TensorFlowProvider(loaded).layers(probe(2, 1, 8, 8))
    assert [la.kind for la in layers_][:2] == ["conv", "activation"]


def test_missing_signature_lists_the_available_ones():
    with pytest.raises(NeurocorrError,
                       match="no signature 'predict' \\(signatures: serve, serving_default\\)"):
        TensorFlowProvider(saved("savedmodel"), signature="predict")


def test_accepts_paths_by_suffix_and_savedmodel_folder(tmp_path):
    assert TensorFlowProvider.accepts(tmp_path / "m.keras")
    assert TensorFlowProvider.accepts(tmp_path / "m.h5")
    assert not TensorFlowProvider.accepts(tmp_path)  # a folder without saved_model.pb
    assert not TensorFlowProvider.accepts(tmp_path / "m.onnx")
    assert TensorFlowProvider.accepts(saved("savedmodel"))


def test_file_that_is_not_a_model(tmp_path):
    bad = tmp_path / "notes.keras"
    bad.write_text("this is not a model")
    with pytest.raises(NeurocorrError, match="notes.keras is not a Keras model file.*model.save"):
        open_model(bad)
    folder = tmp_path / "broken_savedmodel"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x00garbage")
    with pytest.raises(NeurocorrError, match="is not a readable TensorFlow SavedModel.*model.export"):
        open_model(folder)


def test_lambda_layers_load_only_when_trusted(tmp_path):
    inputs = keras.Input((4,))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, layers.Lambda(lambda t: t * 2, name="double")(inputs)).save(path)
    with pytest.raises(NeurocorrError, match="Lambda layer.*trust_pickle=True"):
        TensorFlowProvider(path)
    x = probe(3, 4)
    out = next(TensorFlowProvider(path, trust_pickle=True).activations([x], ["double"]))
    np.testing.assert_allclose(out["double"], 2 * x)


# -- probes and inputs ------------------------------------------------------------------------
def test_probe_shape_rejected_names_the_expected_shape():
    prov = TensorFlowProvider(functional_cnn())
    with pytest.raises(NeurocorrError) as err:
        prov.layers(probe(2, 3, 8, 8))
    text = str(err.value)
    assert "(N, 8, 8, 1) (channels-last)" in text and "a probe of shape (N, 1, 8, 8)" in text
    assert "has shape (N, 3, 8, 8)" in text


def test_dense_model_rejects_wrong_width_with_expected_shape():
    inputs = keras.Input((16,))
    prov = TensorFlowProvider(keras.Model(inputs, layers.Dense(2)(inputs)))
    with pytest.raises(NeurocorrError,
                       match=r"expects inputs of shape \(N, 16\); the probe batch has shape \(N, 10\)"):
        prov.layers(probe(2, 10))


def test_unbuilt_sequential_is_built_then_checked():
    prov = TensorFlowProvider(keras.Sequential([layers.Dense(3), layers.Dense(2)]))
    assert [la.shape for la in prov.layers(probe(2, 16))] == [(3,), (2,)]
    with pytest.raises(NeurocorrError,
                       match=r"expects inputs of shape \(N, 16\); the probe batch has shape \(N, 10\)"):
        prov.layers(probe(2, 10))


def test_probe_the_model_cannot_run_is_reported_with_its_shape():
    inputs = keras.Input((None, None, 1))  # any image size is declared, but 5x5 kernels need 5 pixels
    prov = TensorFlowProvider(keras.Model(inputs, layers.Conv2D(2, 5, name="conv")(inputs)))
    with pytest.raises(NeurocorrError, match=r"rejected a probe batch of shape \(2, 1, 3, 3\) "
                       r"\(fed as \(2, 3, 3, 1\)\).*expects inputs of shape \(N, \?, \?, 1\)"):
        prov.layers(probe(2, 1, 3, 3))


def test_layout_override_that_breaks_the_shape_says_so():
    with pytest.raises(NeurocorrError, match="use layout='auto' instead of 'nchw'"):
        TensorFlowProvider(functional_cnn(), layout="nchw").layers(probe(2, 1, 8, 8))


def two_input_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    image, extra = keras.Input((8, 8, 1), name="image"), keras.Input((4,), name="extra")
    x = layers.Flatten(name="flat")(layers.Conv2D(2, 3, name="conv")(image))
    x = layers.Concatenate(name="cat")([x, extra])
    return keras.Model([image, extra], layers.Dense(3, name="fc")(x))


def test_several_inputs_say_what_is_supported_and_how_to_pass_them():
    with pytest.raises(NeurocorrError) as err:
        TensorFlowProvider(two_input_model())
    text = str(err.value)
    assert "has 2 inputs (image (None, 8, 8, 1), extra (None, 4))" in text
    assert "single-input models" in text and "feed=" in text


def test_feed_passes_several_inputs():
    model, x = two_input_model(), probe(5, 1, 8, 8)
    extra = np.ones((4,), np.float32)
    prov = TensorFlowProvider(model, feed=lambda b: [b, np.tile(extra, (len(b), 1))])
    out = next(prov.activations([x], ["fc"]))["fc"]
    direct = np.asarray(model([x.transpose(0, 2, 3, 1), np.tile(extra, (5, 1))]))
    np.testing.assert_allclose(out, direct, rtol=1e-5, atol=1e-6)


def test_tensorflow_missing_makes_the_plugin_unavailable_with_a_hint(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("neurocorr_tensorflow")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # what an uninstalled module looks like
    info = {i.name: i for i in PluginManager().plugins()}["tensorflow"]
    assert info.status == "unavailable"
    assert "tensorflow is not installed" in info.reason and "pip install tensorflow-cpu" in info.reason


def test_savedmodel_with_integer_input_refuses_fractional_probes(tmp_path):
    inputs = keras.Input((4,), dtype="int32")
    x = layers.Dense(2, name="fc")(layers.Lambda(lambda t: keras.ops.cast(t, "float32"), name="cast")(inputs))
    path = tmp_path / "int_input"
    keras.Model(inputs, x).export(path, verbose=False)
    prov = TensorFlowProvider(path)
    with pytest.raises(NeurocorrError, match="takes int32 inputs, but the probe holds fractional values"):
        prov.layers(np.full((2, 4), 0.5, np.float32))
    assert [la.name for la in prov.layers(np.ones((2, 4), np.float32))][-1].startswith("fc")


# -- channel means inside the graph ------------------------------------------------------------
@pytest.mark.parametrize("source", ["object", "savedmodel"])
def test_channel_means_equal_numpy_means_of_keras_outputs(source):
    x = probe(5, 1, 8, 8)
    model = functional_cnn()
    prov = TensorFlowProvider(model if source == "object" else saved("savedmodel"))
    names = [la.name for la in prov.layers(x[:2])]  # a SavedModel's may carry a suffix (conv1_1)
    raw = next(prov.activations([x], names))
    means = next(prov.activations([x], names, channel_means=True))
    for name, layer in zip(names, model.layers[1:], strict=True):
        assert name.startswith(layer.name)
        own = layer_output(model, layer.name, x.transpose(0, 2, 3, 1)).astype(np.float64)  # Keras, NHWC
        expected = own.mean(axis=(1, 2)) if own.ndim == 4 else own
        assert means[name].dtype == np.float32 and means[name].shape == expected.shape, name
        np.testing.assert_allclose(means[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)
    assert raw[names[0]].shape == (5, 4, 8, 8)  # the raw capture is still the whole map
    cache = prov.backend._subs if source == "object" else prov.backend._pruned
    assert set(cache) == {(tuple(names), False), (tuple(names), True)}  # one graph per mode


def test_channel_means_of_channels_first_and_1d_outputs():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2, 8, 8))
    first = keras.Model(inputs, layers.Conv2D(3, 3, data_format="channels_first", name="conv")(inputs))
    x = probe(4, 2, 8, 8)
    got = next(TensorFlowProvider(first).activations([x], ["conv"], channel_means=True))["conv"]
    np.testing.assert_allclose(got, layer_output(first, "conv", x).mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)

    inputs = keras.Input((10, 2))  # (length, channels)
    conv1d = keras.Model(inputs, layers.Conv1D(5, 3, name="conv")(inputs))
    x = probe(4, 2, 10)
    got = next(TensorFlowProvider(conv1d).activations([x], ["conv"], channel_means=True))["conv"]
    np.testing.assert_allclose(got, layer_output(conv1d, "conv", x.transpose(0, 2, 1)).mean(axis=1),
                               rtol=1e-5, atol=1e-6)


def test_channel_means_of_a_subclassed_model():
    keras.utils.set_random_seed(0)
    model = Subclassed()
    x = probe(4, 1, 8, 8)
    nhwc = x.transpose(0, 2, 3, 1)
    got = next(TensorFlowProvider(model).activations([x], ["conv", "act", "fc"], channel_means=True))
    conv = np.asarray(model.conv(nhwc), np.float64)  # Keras' own forward, layer by layer
    np.testing.assert_allclose(got["conv"], conv.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["act"], np.maximum(conv, 0).mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["fc"], np.asarray(model(nhwc)), rtol=1e-5, atol=1e-6)
