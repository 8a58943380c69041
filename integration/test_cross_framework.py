"""Cross-framework identity, the headline proof of the multi-framework providers.

The reference MLP and CNN (reference.py) are built natively in PyTorch, Keras, Flax nnx,
Flax linen and plain JAX, and exported to ONNX from PyTorch (torch.onnx), Keras (tf2onnx)
and Flax nnx (jax2onnx). Every pair of these eight models is compared with
``neurocorr_core.compare`` on the same probe, selecting ``kind:activation`` in both, in both
neuron views: every neuron's best match must be its own counterpart, the network score at
least 0.9999 in both directions, and each counterpart pair's |r| (numpy's corrcoef on the
extracted activations, an independent check) above 0.9999.

Seed 2 of the reference weights is used: with seed 0, two of the CNN's five dense ReLUs
are zero on every probe sample (dead), and a dead neuron has no defined correlation.
A framework whose builder module (or framework) is not installed is skipped, saying which.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from neurocorr_core import NeurocorrError, compare, get_plugin_manager, open_model
from neurocorr_core.selection import select_layers
from reference import cnn_forward, cnn_probe, cnn_weights, mlp_forward, mlp_probe, mlp_weights

# Building and exporting the eight models takes about 30 s (TensorFlow, JAX and jax2onnx start-up).
pytestmark = pytest.mark.slow

SEED = 2
NETS = ("mlp", "cnn")
VIEWS = ("channel", "position")
NATIVE = ("torch", "keras", "flax-nnx", "flax-linen", "jax")
EXPORTS = ("onnx-torch", "onnx-keras", "onnx-jax")
MODELS = NATIVE + EXPORTS
PAIRS = list(itertools.combinations(MODELS, 2))

# Per-sample input shapes in each framework's own layout.
TORCH_SHAPE = {"mlp": (16,), "cnn": (1, 8, 8)}
FLAX_SHAPE = {"mlp": (16,), "cnn": (8, 8, 1)}


def probe(net: str) -> np.ndarray:
    return mlp_probe() if net == "mlp" else cnn_probe()


def reference(net: str) -> list[np.ndarray]:
    """The ReLU outputs of the numpy reference, float64, channels-first."""
    if net == "mlp":
        return mlp_forward(mlp_weights(SEED), mlp_probe())
    return cnn_forward(cnn_weights(SEED), cnn_probe())


def view(out: np.ndarray, name: str) -> np.ndarray:
    """(batch, neurons) with numpy alone: channel means, or every C*H*W value."""
    if out.ndim == 2:
        return out
    flat = out.reshape(len(out), out.shape[1], -1)
    return flat.mean(axis=2) if name == "channel" else flat.reshape(len(out), -1)


def _builder(module: str, attr: str) -> Callable[[], Any]:
    def build() -> Any:
        return getattr(importlib.import_module(module), attr)(SEED)
    return build


def _native_builders(net: str) -> dict[str, Callable[[], Any]]:
    return {
        "torch": _builder("builders_torch", f"build_{net}"),
        "keras": _builder("builders_keras", f"build_{net}"),
        "flax-nnx": _builder("builders_jax", f"build_{net}_nnx"),
        "flax-linen": _builder("builders_jax", f"build_{net}_linen"),
        "jax": _builder("builders_jax", f"build_{net}_fn"),
    }


def _exporters(net: str) -> dict[str, tuple[str, Callable[[Any, Any], Any]]]:
    import builders_onnx as bo

    return {
        "onnx-torch": ("torch", lambda m, p: bo.export_torch(m, p, TORCH_SHAPE[net])),
        "onnx-keras": ("keras", bo.export_keras),
        "onnx-jax": ("flax-nnx", lambda m, p: bo.export_jax(m, p, FLAX_SHAPE[net])),
    }


def _build_all(net: str, folder: Any) -> dict[str, Any]:
    """Every model, or the reason it cannot be built here (str wrapped in a Missing)."""
    models: dict[str, Any] = {}
    for name, build in _native_builders(net).items():
        try:
            models[name] = build()
        except ImportError as exc:
            models[name] = Missing(f"{name} builder unavailable: {exc}")
    try:
        importlib.import_module("neurocorr_onnx")
        exporters = _exporters(net)
    except ImportError as exc:
        exporters = {}
        for name in EXPORTS:
            models[name] = Missing(f"ONNX provider unavailable: {exc}")
    for name, (source, export) in exporters.items():
        if isinstance(models[source], Missing):
            models[name] = Missing(f"no {source} model to export: {models[source].reason}")
            continue
        try:
            models[name] = str(export(models[source], folder / f"{net}-{name}.onnx"))
        except ImportError as exc:
            models[name] = Missing(f"{name} exporter unavailable: {exc}")
    for name, model in models.items():  # a framework without its provider plugin is skipped too
        if not isinstance(model, Missing):
            try:
                get_plugin_manager().provider_for(model)
            except NeurocorrError as exc:
                models[name] = Missing(f"no provider for the {name} model: {exc}")
    return models


class Missing:
    def __init__(self, reason: str) -> None:
        self.reason = reason


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("cross-framework")
    return {net: _build_all(net, folder) for net in NETS}


def _get(models: dict[str, dict[str, Any]], net: str, name: str) -> Any:
    model = models[net][name]
    if isinstance(model, Missing):
        pytest.skip(model.reason)
    return model


@pytest.fixture(scope="module")
def activations(models: dict[str, dict[str, Any]]) -> dict[tuple[str, str], list[np.ndarray] | Missing]:
    """Each model's kind:activation outputs on the probe, extracted once."""
    found: dict[tuple[str, str], list[np.ndarray] | Missing] = {}
    for net in NETS:
        x = probe(net)
        for name, model in models[net].items():
            if isinstance(model, Missing):
                found[net, name] = model
                continue
            provider = open_model(model)
            layers = select_layers(provider.layers(x[:2]), "kind:activation", name)
            out = next(provider.activations([x], [layer.name for layer in layers]))
            found[net, name] = [out[layer.name] for layer in layers]
            provider.close()
    return found


# -- the reference is usable ----------------------------------------------------------------------
@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("neurons", VIEWS)
def test_reference_has_no_dead_neuron(net: str, neurons: str) -> None:
    for i, out in enumerate(reference(net)):
        spread = view(out, neurons).std(axis=0)
        assert (spread > 1e-6).all(), (f"layer {i} of the {net} reference has {(spread <= 1e-6).sum()} "
                                       f"constant neurons in the {neurons} view; choose another SEED")


# -- every model computes the reference ---------------------------------------------------------
@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("name", MODELS)
def test_activations_equal_the_numpy_reference(activations: Any, net: str, name: str) -> None:
    got = activations[net, name]
    if isinstance(got, Missing):
        pytest.skip(got.reason)
    expected = reference(net)
    assert len(got) == len(expected), f"{name}: {len(got)} activation layers, reference has {len(expected)}"
    for i, (out, ref) in enumerate(zip(got, expected, strict=True)):
        assert out.shape == ref.shape, (name, i, out.shape, ref.shape)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5, err_msg=f"{name} layer {i}")


# -- pairwise identity --------------------------------------------------------------------------
@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("neurons", VIEWS)
@pytest.mark.parametrize("pair", PAIRS, ids=[f"{a}-vs-{b}" for a, b in PAIRS])
def test_pairwise_identity(models: Any, activations: Any, net: str, neurons: str,
                           pair: tuple[str, str]) -> None:
    a, b = pair
    model_a, model_b = _get(models, net, a), _get(models, net, b)
    result = compare(model_a, model_b, probe(net), neurons=neurons,
                     layers_a="kind:activation", layers_b="kind:activation")
    layers = len(reference(net))
    assert len(result.layers_a) == len(result.layers_b) == layers
    n = sum(lr.neurons for lr in result.layers_a)
    assert sum(lr.neurons for lr in result.layers_b) == n
    assert sum(lr.dead for lr in result.layers_a) == sum(lr.dead for lr in result.layers_b) == 0
    np.testing.assert_array_equal(result.partner_a, np.arange(n), err_msg=f"{a} -> {b}")
    np.testing.assert_array_equal(result.partner_b, np.arange(n), err_msg=f"{b} -> {a}")
    assert result.score.a_to_b >= 0.9999 and result.score.b_to_a >= 0.9999, result.score

    # |r| of each counterpart pair, from the activations with numpy alone.
    xa = np.concatenate([view(o, neurons) for o in activations[net, a]], axis=1).astype(np.float64)
    xb = np.concatenate([view(o, neurons) for o in activations[net, b]], axis=1).astype(np.float64)
    assert xa.shape == xb.shape == (len(probe(net)), n)
    r = np.array([np.corrcoef(xa[:, k], xb[:, k])[0, 1] for k in range(n)])
    assert (np.abs(r) > 0.9999).all(), f"{a} vs {b}: lowest |r| {np.abs(r).min()} at neuron {np.abs(r).argmin()}"
