"""The JAX builders (nnx, linen, plain functions) reproduce the numpy reference through the
JAX provider: the ``kind:activation`` layers equal the reference ReLU outputs, channels-first."""

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("flax")

import builders_jax
from neurocorr_core import open_model
from neurocorr_core.selection import select_layers
from reference import cnn_forward, cnn_probe, cnn_weights, mlp_forward, mlp_probe, mlp_weights

VARIANTS = ["nnx", "linen", "fn"]


def _reference(kind):
    if kind == "mlp":
        return mlp_probe(), mlp_forward(mlp_weights(), mlp_probe())
    return cnn_probe(), cnn_forward(cnn_weights(), cnn_probe())


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_jax_matches_numpy_reference(kind, variant):
    model = getattr(builders_jax, f"build_{kind}_{variant}")()
    probe, ref = _reference(kind)
    prov = open_model(model)
    assert prov.name == "jax"
    layers = select_layers(prov.layers(probe[:2]), "kind:activation", kind)
    out = next(prov.activations([probe], [la.name for la in layers]))
    assert [la.op for la in layers] == ["relu"] * len(ref)
    assert len(layers) == len(ref)
    for layer, expected in zip(layers, ref, strict=True):
        assert layer.shape == expected.shape[1:]
        np.testing.assert_allclose(out[layer.name], expected, rtol=1e-5, atol=1e-5, err_msg=layer.name)


@pytest.mark.parametrize("variant", VARIANTS)
def test_cnn_conv_outputs_are_channels_first(variant):
    """The pre-ReLU conv outputs too: a conv output transposed the wrong way would still
    have matching shapes here only by accident, so compare values."""
    from reference import conv2d

    model = getattr(builders_jax, f"build_cnn_{variant}")()
    probe, w = cnn_probe(), cnn_weights()
    prov = open_model(model)
    conv = select_layers(prov.layers(probe[:2]), "kind:conv", "cnn")[0]
    out = next(prov.activations([probe], [conv.name]))[conv.name]
    np.testing.assert_allclose(out, conv2d(probe.astype(np.float64), w["conv1.w"], w["conv1.b"]),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_plain_forward_for_exporters_gives_the_reference_logits(variant):
    """``jax_forward`` (what an ONNX exporter traces) computes the reference network's output."""
    w = cnn_weights()
    probe = cnn_probe()
    x = probe if variant == "fn" else probe.transpose(0, 2, 3, 1)  # the nnx/linen CNNs take NHWC
    out = builders_jax.jax_forward(getattr(builders_jax, f"build_cnn_{variant}")())(x)
    expected = cnn_forward(w, probe)[2] @ w["fc2.w"].T + w["fc2.b"]
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-5)
