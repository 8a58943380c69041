"""The Keras builders reproduce the numpy reference through the tensorflow provider, so a Keras
model and its PyTorch twin give the same neurons in the same (channels-first) order."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("neurocorr_tensorflow")

from builders_keras import build_cnn, build_mlp
from neurocorr_core import open_model
from neurocorr_core.selection import select_layers
from reference import cnn_forward, cnn_probe, cnn_weights, mlp_forward, mlp_probe, mlp_weights


def _reference(kind: str):
    if kind == "mlp":
        return build_mlp(), mlp_probe(), mlp_forward(mlp_weights(), mlp_probe())
    return build_cnn(), cnn_probe(), cnn_forward(cnn_weights(), cnn_probe())


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_keras_matches_numpy_reference(kind):
    model, probe, ref = _reference(kind)
    prov = open_model(model)
    assert prov.name == "tensorflow"
    layers = select_layers(prov.layers(probe[:2]), "kind:activation", kind)
    out = next(prov.activations([probe], [la.name for la in layers]))
    assert len(layers) == len(ref)
    for layer, expected in zip(layers, ref, strict=True):
        assert out[layer.name].shape == expected.shape, layer.name
        np.testing.assert_allclose(out[layer.name], expected, rtol=1e-4, atol=1e-5, err_msg=layer.name)


def test_keras_cnn_conv_outputs_are_channels_first():
    """A pre-activation conv output equals the numpy conv, channel for channel (not just after
    the ReLU, which could hide a sign or layout slip in dead units)."""
    from reference import conv2d

    model, probe, w = build_cnn(), cnn_probe(), cnn_weights()
    prov = open_model(model)
    out = next(prov.activations([probe], ["conv1"]))["conv1"]
    np.testing.assert_allclose(out, conv2d(probe.astype(np.float64), w["conv1.w"], w["conv1.b"]),
                               rtol=1e-4, atol=1e-5)
