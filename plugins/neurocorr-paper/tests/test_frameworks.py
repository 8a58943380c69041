"""The Keras and JAX trainers: the paper's MLP trained on real digits, its neurons as neurocorr's
providers read them checked against a numpy forward pass from the trained weights, and the
FC->CNN score across frameworks checked against np.corrcoef."""

import dataclasses
import sys

import numpy as np
import pytest
import torch

from neurocorr_core import NeurocorrError, open_model
from neurocorr_core.selection import select_layers
from neurocorr_paper.data import load_split
from neurocorr_paper.mnist_family import network_score
from neurocorr_paper.settings import QUICK
from neurocorr_paper.trained_model import TrainedModel
from neurocorr_paper.trainers import MLP_TRAINERS, require, torch_cnn

from .test_scores import cnn_neurons, paper_score

HIDDEN = [60, 40]  # two hidden layers: the selection must find both and chain them right


@pytest.fixture(scope="module")
def digits():
    return load_split("digits", QUICK["digits"])


@pytest.fixture(scope="module")
def trained(digits):
    """net2 trained by each framework for 40 epochs over the 1,348 training digits."""
    settings = dataclasses.replace(QUICK["digits"], mlp_epochs=40)
    torch.set_num_threads(1)
    return {fw: MLP_TRAINERS[fw]("net2", HIDDEN, digits, settings, 7) for fw in ("torch", "keras", "jax")}


def dense_weights(m: TrainedModel, framework: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each Linear/Dense layer's (kernel (in, out), bias), read from the framework's model."""
    if framework == "keras":
        return [tuple(np.asarray(w) for w in layer.get_weights())  # type: ignore[misc]
                for layer in m.model.layers if type(layer).__name__ == "Dense"]
    from flax import nnx

    return [(np.asarray(layer.kernel[...]), np.asarray(layer.bias[...]))
            for layer in m.model.layers if isinstance(layer, nnx.Linear)]


def numpy_forward(weights: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Hidden ReLU outputs and logits in inference mode (dropout is the identity)."""
    h, hidden = x.reshape(len(x), -1).astype(np.float64), []
    for kernel, bias in weights[:-1]:
        h = np.maximum(h @ kernel + bias, 0.0)
        hidden.append(h)
    kernel, bias = weights[-1]
    return hidden, h @ kernel + bias


@pytest.mark.parametrize("framework", ["torch", "keras", "jax"])
def test_trainer_learns_real_digits(trained, framework):
    assert trained[framework].accuracy > 0.85  # 10 classes: chance is 0.1


@pytest.mark.parametrize("framework", ["keras", "jax"])
def test_provider_reads_the_hidden_relu_outputs(trained, digits, framework):
    m = trained[framework]
    x = digits.x_test.numpy()[:64]
    hidden, logits = numpy_forward(dense_weights(m, framework), x)
    assert [w.shape[1] for w in hidden] == HIDDEN
    provider = open_model(m.model)
    layers = select_layers(provider.layers(x[:2]), m.layers, framework)
    assert [layer.shape for layer in layers] == [(60,), (40,)]  # exactly the hidden ReLUs, 100 neurons
    got = next(provider.activations([x], [layer.name for layer in layers]))
    for layer, want in zip(layers, hidden, strict=True):
        np.testing.assert_allclose(got[layer.name], want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(m.predict(x), logits.argmax(1))  # predict: dropout off
    # the weights moved away from the torch-like uniform(+-1/sqrt(fan_in)) initialisation
    assert np.abs(dense_weights(m, framework)[0][0]).max() > 1 / np.sqrt(64)


@pytest.mark.parametrize("framework", ["keras", "jax"])
def test_fc_to_torch_cnn_score_across_frameworks(trained, digits, framework):
    m = trained[framework]
    torch.manual_seed(0)
    cnn = torch_cnn("cnn", digits, dataclasses.replace(QUICK["digits"], cnn_epochs=0), 10)
    x = digits.x_test.numpy()[:50]
    res = network_score(m, cnn, x)
    assert [lr.neurons for lr in res.layers_a] == HIDDEN
    hidden, _ = numpy_forward(dense_weights(m, framework), x)
    want_ab, want_ba = paper_score(hidden, cnn_neurons(cnn.model, torch.from_numpy(x)))
    assert abs(res.score.a_to_b - want_ab) < 1e-5
    assert abs(res.score.b_to_a - want_ba) < 1e-5


@pytest.mark.parametrize(("framework", "module", "install"), [
    ("keras", "tensorflow", "pip install tensorflow-cpu keras"), ("jax", "optax", "pip install jax flax optax")])
def test_missing_framework_names_the_pip_package(framework, module, install, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(NeurocorrError, match=f"needs {module}, which is not installed; install it with: {install}"):
        require(framework)


def test_jax_trainer_import_error_names_the_pip_package(monkeypatch, digits):
    from neurocorr_paper import jax_mlp

    monkeypatch.setitem(sys.modules, "optax", None)
    with pytest.raises(NeurocorrError, match="pip install jax flax optax"):
        jax_mlp.train_mlp("net1", [100], digits, QUICK["digits"], 0)
