"""The Keras builders reproduce the numpy reference through the tensorflow provider, so a Keras
model and its PyTorch twin give the same neurons in the same (channels-first) order: as an
in-memory model, as a ``.keras`` file and as a SavedModel directory."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("neurocorr_tensorflow")

from builders_keras import build_cnn, build_mlp, build_mlp_fused
from builders_torch import build_mlp as torch_mlp
from neurocorr_core import compare, open_model
from neurocorr_core.cli import main
from neurocorr_core.selection import select_layers
from reference import cnn_forward, cnn_probe, cnn_weights, conv2d, mlp_forward, mlp_probe, mlp_weights


def _reference(kind: str):
    if kind == "mlp":
        return build_mlp(), mlp_probe(), mlp_forward(mlp_weights(), mlp_probe())
    return build_cnn(), cnn_probe(), cnn_forward(cnn_weights(), cnn_probe())


def _saved(model, form: str, folder):
    if form == "object":
        return model
    if form == "keras":
        path = folder / f"{model.name}.keras"
        model.save(path)
        return path
    path = folder / f"{model.name}_savedmodel"
    model.export(path, verbose=False)
    return path


@pytest.mark.parametrize("form", ["object", "keras", "savedmodel"])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_keras_matches_numpy_reference(kind, form, tmp_path):
    model, probe, ref = _reference(kind)
    prov = open_model(_saved(model, form, tmp_path))
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
    model, probe, w = build_cnn(), cnn_probe(), cnn_weights()
    out = next(open_model(model).activations([probe], ["conv1"]))["conv1"]
    np.testing.assert_allclose(out, conv2d(probe.astype(np.float64), w["conv1.w"], w["conv1.b"]),
                               rtol=1e-4, atol=1e-5)


def test_cli_compares_a_torch_model_with_its_keras_twin(tmp_path, capsys):
    """From the command line alone; with seed-0 weights some ReLUs are dead on the probe, and a
    dead neuron scores 0, so the score is the share of live neurons (from numpy)."""
    pytest.importorskip("neurocorr_torch")
    x = cnn_probe(seed=3)
    np.save(tmp_path / "probe.npy", x)
    code = main(["compare", "builders_torch:build_cnn", "builders_keras:build_cnn",
                 "--probe", str(tmp_path / "probe.npy"), "--quiet"])
    text = capsys.readouterr().out
    assert code == 0, text
    line = next(row for row in text.splitlines() if row.startswith("score A->B"))
    scores = [float(word) for word in line.split() if word[0].isdigit()]
    channels = [o.reshape(len(x), o.shape[1], -1).mean(axis=2) for o in cnn_forward(cnn_weights(), x)]
    live = np.concatenate([c.std(axis=0) > 1e-9 for c in channels])
    assert len(scores) == 3, line
    np.testing.assert_allclose(scores, live.mean(), atol=1e-4, err_msg=line)


def test_fused_relus_are_activations_matching_separate_relus_of_torch():
    """Dense(activation="relu") outputs are after the ReLU: kind:activation (the default) selects
    them, and they match the PyTorch twin's nn.ReLU outputs neuron for neuron."""
    keras_model = build_mlp_fused(seed=2)  # seed 2: every ReLU is alive on the probe
    layers = open_model(keras_model).layers(mlp_probe()[:2])
    assert [(la.name, la.kind, la.op) for la in layers] == [
        ("fc1", "activation", "Dense+relu"), ("fc2", "activation", "Dense+relu"), ("fc3", "dense", "Dense")]
    result = compare(torch_mlp(seed=2), keras_model, mlp_probe())
    assert [lr.info.name for lr in result.layers_b] == ["fc1", "fc2"]
    assert result.partner_a.tolist() == list(range(20)) and result.partner_b.tolist() == list(range(20))
    assert min(result.value_a.min(), result.value_b.min()) > 0.9999
