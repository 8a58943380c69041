"""Models by name (keras.applications:NAME), built offline with random weights, and devices."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from neurocorr_core import NeurocorrError, compare, open_model
from neurocorr_tensorflow import TensorFlowProvider
from neurocorr_tensorflow.named import parse

SMALL = "keras.applications:MobileNetV2?input_shape=32,32,3&alpha=0.35&classes=10"
IMAGES = np.random.default_rng(0).normal(size=(12, 3, 32, 32)).astype(np.float32)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: weights come from local files only."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neurocorr_core.cli", *args], capture_output=True, text=True,
                          timeout=600)


def errors(out: subprocess.CompletedProcess[str]) -> list[str]:
    """neurocorr's own stderr lines (TensorFlow may print its oneDNN notice there too)."""
    return [line for line in out.stderr.splitlines() if line.startswith("neurocorr")]


def test_parse():
    name = parse("keras.applications:MobileNetV2?weights=imagenet&input_shape=96,96,3&alpha=0.35&seed=3"
                 "&include_top=false&pooling=avg")
    assert (name.model, name.weights, name.seed) == ("MobileNetV2", "imagenet", 3)
    assert name.kwargs == {"input_shape": (96, 96, 3), "alpha": 0.35, "include_top": False, "pooling": "avg"}
    assert name.checkpoint is None and parse(f"{SMALL}&weights=./w.weights.h5").checkpoint == "./w.weights.h5"
    assert parse("keras.applications:VGG16?input_shape=[32,32,3]").kwargs == {"input_shape": (32, 32, 3)}
    with pytest.raises(NeurocorrError, match="not KEY=VALUE"):
        parse("keras.applications:MobileNetV2?weights")


def test_layers_cli_lists_mobilenet_v2_by_name():
    out = cli("layers", SMALL, "--input-shape", "3,32,32", "--json")
    assert out.returncode == 0, out.stderr
    layers = json.loads(out.stdout)
    names = [layer["name"] for layer in layers]
    assert names[:3] == ["Conv1", "bn_Conv1", "Conv1_relu"] and names[-1] == "predictions"
    assert layers[-1]["shape"] == [10] and layers[0]["shape"] == [16, 16, 16]  # channels-first, alpha 0.35


def test_compare_two_models_by_name():
    same = compare(SMALL, SMALL, IMAGES, metric="pearson", layers_a="kind:activation", layers_b="kind:activation")
    other = compare(SMALL, f"{SMALL}&seed=1", IMAGES, metric="pearson", layers_a="kind:activation",
                    layers_b="kind:activation")
    n, dead = same.value_a.size, sum(layer.dead for layer in same.layers_a)
    assert same.score.symmetric == pytest.approx((n - dead) / n, abs=1e-6)  # seeded: the same weights
    assert 0 < other.score.symmetric < same.score.symmetric
    assert same.model_a == SMALL


def test_random_weights_are_seeded_and_leave_the_global_generators_alone():
    state = np.random.get_state()[1].copy()
    a, b = open_model(SMALL).backend.model, open_model(SMALL).backend.model
    c = open_model(f"{SMALL}&seed=1").backend.model
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights(), strict=True))
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
    assert np.array_equal(np.random.get_state()[1], state)


def test_weights_file_round_trip(tmp_path):
    source = open_model(f"{SMALL}&seed=7").backend.model
    path = tmp_path / "mnv2.weights.h5"
    source.save_weights(path)
    provider = open_model(f"{SMALL}&weights={path}")
    assert all(np.array_equal(u, v) for u, v in zip(provider.backend.model.get_weights(), source.get_weights(),
                                                     strict=True))
    assert provider.fingerprint() != open_model(SMALL).fingerprint()


def test_imagenet_weights_from_the_local_keras_cache(tmp_path, monkeypatch):
    """weights=imagenet reads ~/.keras/models (here a Keras home the test fills): the file Keras
    would download, written by the test in Keras' legacy .h5 weights format."""
    import h5py
    from keras.src.backend import config
    from keras.src.legacy.saving import legacy_h5_format

    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path))
    base = "keras.applications:MobileNetV2?input_shape=96,96,3&alpha=0.35&include_top=false"
    with pytest.raises(NeurocorrError, match=rf"looked for {tmp_path}/models/mobilenet_v2_\S+_0.35_96_no_top\.h5"):
        open_model(f"{base}&weights=imagenet")
    source = open_model(f"{base}&seed=5").backend.model
    (tmp_path / "models").mkdir()
    with h5py.File(tmp_path / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5",
                   "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    loaded = open_model(f"{base}&weights=imagenet").backend.model
    assert all(np.array_equal(u, v) for u, v in zip(loaded.get_weights(), source.get_weights(), strict=True))


def test_missing_weights_file_is_one_line_naming_the_path(tmp_path):
    missing = tmp_path / "nope" / "mnv2.weights.h5"
    out = cli("layers", f"{SMALL}&weights={missing}", "--input-shape", "3,32,32")
    assert out.returncode == 2
    assert len(errors(out)) == 1 and str(missing) in errors(out)[0], out.stderr


def test_bad_names():
    with pytest.raises(NeurocorrError, match="no model 'MobileNetV9'.*MobileNetV2"):
        open_model("keras.applications:MobileNetV9")
    with pytest.raises(NeurocorrError, match="seed must be an integer"):
        open_model("keras.applications:MobileNetV2?seed=x")
    with pytest.raises(NeurocorrError, match="building the model failed: .*unexpected keyword.*'colour'"):
        open_model("keras.applications:MobileNetV2?colour=red")


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="this machine has a GPU")
def test_gpu_on_a_cpu_only_machine_is_a_clear_error():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(NeurocorrError, match="device 'gpu' asked for, but this TensorFlow .*use device=cpu"):
        TensorFlowProvider(model, device="gpu")
    with pytest.raises(NeurocorrError, match="device 'cuda:1' asked for"):
        compare(model, model, np.ones((4, 3), np.float32), options_a={"device": "cuda:1"})
    with pytest.raises(NeurocorrError, match="'tpu' is not a TensorFlow device; use cpu, gpu"):
        TensorFlowProvider(model, device="tpu")


def test_cpu_device_gives_the_default_values():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="fc")])
    x = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    default = next(TensorFlowProvider(model).activations([x], ["fc"]))["fc"]
    cpu = next(TensorFlowProvider(model, device="cpu:0").activations([x], ["fc"]))["fc"]
    np.testing.assert_allclose(cpu, default, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(default, x @ model.layers[0].kernel.numpy() + model.layers[0].bias.numpy(),
                               rtol=1e-5, atol=1e-6)
