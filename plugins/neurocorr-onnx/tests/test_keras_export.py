"""The layout rule on a real tf2onnx export of a channels-last Keras model.

tf2onnx keeps Keras' NHWC input and wraps each Conv in Transposes, which its optimiser then
pushes through elementwise ops; wherever they end up, every ReLU must leave the provider
channels-first and equal to Keras' own output moved to NCHW by numpy.
"""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")
pytest.importorskip("tf2onnx")

import onnx  # noqa: E402

from neurocorr_core.selection import select_layers  # noqa: E402
from neurocorr_onnx import OnnxProvider  # noqa: E402

pytestmark = pytest.mark.slow  # TensorFlow's start-up and two exports: 10-20 s


def _keras_model():
    """(10, 12, 3) NHWC -> conv -> ReLU -> conv + residual -> ReLU -> pool -> dense.
    Non-square images, so a wrong axis order cannot pass by a coincidence of sizes."""
    keras.utils.set_random_seed(0)
    layers = keras.layers
    x = inputs = keras.Input((10, 12, 3))
    a = layers.ReLU(name="r1")(layers.Conv2D(5, 3, name="c1")(x))
    b = layers.Conv2D(5, 3, padding="same", name="c2")(a)
    c = layers.ReLU(name="r2")(layers.Add(name="add")([a, b]))
    d = layers.ReLU(name="r3")(layers.MaxPooling2D(2, name="pool")(c))
    out = layers.Dense(3, name="fc")(layers.GlobalAveragePooling2D(name="gap")(d))
    model = keras.Model(inputs, out)
    model(np.zeros((1, 10, 12, 3), np.float32))
    return model


def _keras_model_flattened():
    """Channel-axis ops (softmax, layer norm) and a Flatten, which needs NHWC order: tf2onnx
    puts a Transpose back to NHWC in front of the Flatten."""
    keras.utils.set_random_seed(0)
    layers = keras.layers
    x = inputs = keras.Input((10, 12, 3))
    a = layers.ReLU(name="r1")(layers.Conv2D(5, 3, name="c1")(x))
    b = layers.ReLU(name="r2")(layers.Multiply(name="mul")([layers.Softmax(axis=-1, name="sm")(a), a]))
    c = layers.ReLU(name="r3")(layers.LayerNormalization(axis=-1, name="ln")(b))
    out = layers.Dense(3, name="fc")(layers.Flatten(name="flat")(c))
    model = keras.Model(inputs, out)
    model(np.zeros((1, 10, 12, 3), np.float32))
    return model


_EXPORTS: dict = {}


def _export(kind, tmp_path_factory):
    """Each Keras model built and exported once per session."""
    if kind not in _EXPORTS:
        model = _keras_model() if kind == "residual" else _keras_model_flattened()
        path = tmp_path_factory.mktemp("keras") / "model.onnx"
        model.export(str(path), format="onnx", verbose=False)
        _EXPORTS[kind] = model, path
    return _EXPORTS[kind]


@pytest.fixture(scope="module", params=["residual", "flattened"])
def exported(request, tmp_path_factory):
    return _export(request.param, tmp_path_factory)


def _keras_outputs(model, names, probe):
    """Keras' own outputs of layers ``names`` for an NCHW probe, moved to NCHW by numpy."""
    sub = keras.Model(model.input, [model.get_layer(n).output for n in names])
    outs = sub(probe.transpose(0, 2, 3, 1))
    outs = outs if isinstance(outs, (list, tuple)) else [outs]  # one output comes unwrapped
    return [np.asarray(out).transpose(0, 3, 1, 2) for out in outs]


def test_keras_export_relus_leave_channels_first(exported):
    model, path = exported
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops[0] == "Transpose", "tf2onnx should keep the NHWC input and transpose it"
    probe = np.random.default_rng(0).normal(size=(6, 3, 10, 12)).astype(np.float32)  # NCHW

    prov = OnnxProvider(path)
    layers = prov.layers(probe[:2])
    relus = select_layers(layers, "kind:activation", "export")
    assert len(relus) == 3 and all(la.op == "Relu" for la in relus)
    got = next(prov.activations([probe], [la.name for la in relus]))
    expected = _keras_outputs(model, ["r1", "r2", "r3"], probe)
    for layer, want in zip(relus, expected, strict=True):
        assert layer.shape == want.shape[1:], (layer.name, layer.shape, want.shape)
        np.testing.assert_allclose(got[layer.name], want, rtol=1e-4, atol=1e-5, err_msg=layer.name)


def test_keras_export_nhwc_tensor_is_moved_channels_first(tmp_path_factory):
    """The Transpose tf2onnx puts before Flatten yields an NHWC tensor: it leaves the
    provider channels-first, equal to the last ReLU."""
    model, path = _export("flattened", tmp_path_factory)
    probe = np.random.default_rng(1).normal(size=(4, 3, 10, 12)).astype(np.float32)
    prov = OnnxProvider(path)
    (back,) = [la for la in prov.layers(probe[:2]) if la.op == "Transpose" and la.depth > 0]
    assert back.shape == (5, 8, 10)
    got = next(prov.activations([probe], [back.name]))[back.name]
    np.testing.assert_allclose(got, _keras_outputs(model, ["r3"], probe)[0], rtol=1e-4, atol=1e-5)


def test_keras_export_with_layout_forced_wrong_is_refused(exported):
    _, path = exported
    probe = np.zeros((2, 3, 10, 12), np.float32)
    OnnxProvider(path).layers(probe)  # auto: fed channels-last
    from neurocorr_core import NeurocorrError

    with pytest.raises(NeurocorrError, match=r"expects \(.*, 10, 12, 3\)"):
        OnnxProvider(path, layout="nchw").layers(probe)
