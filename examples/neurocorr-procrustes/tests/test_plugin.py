"""The installed plugin: listed by 'neurocorr plugins --json', chosen by name in compare()."""

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from neurocorr_core import ActivationProvider, LayerInfo, NeurocorrError, PluginManager, compare, hookimpl
from neurocorr_procrustes import Procrustes


def test_listed_by_neurocorr_plugins_json():
    proc = subprocess.run([sys.executable, "-m", "neurocorr_core.cli", "plugins", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    assert "procrustes" in plugins, "install it: pip install -e examples/neurocorr-procrustes"
    info = plugins["procrustes"]
    assert info["status"] == "ok" and info["version"] == "0.1.0"
    assert info["provides"] == {"metric": ["procrustes"]}
    assert info["hooks"] == ["neurocorr_similarity_metrics"]


def test_found_by_the_default_plugin_manager():
    assert PluginManager().metric("procrustes") is Procrustes


class ArrayModel:
    """A 'model' whose layers are fixed linear maps of the input, for an end-to-end run."""

    def __init__(self, maps: dict[str, np.ndarray]) -> None:
        self.maps = maps


class ArrayProvider(ActivationProvider):
    name = "procrustes-test-arrays"

    @classmethod
    def accepts(cls, model: object) -> bool:
        return isinstance(model, ArrayModel)

    def layers(self, sample):
        return [LayerInfo(name, (m.shape[1],), depth, "activation", "Linear")
                for depth, (name, m) in enumerate(self.model.maps.items())]

    def activations(self, batches, layers):
        for batch in batches:
            yield {name: (batch @ self.model.maps[name]).astype(np.float32) for name in layers}


@hookimpl
def neurocorr_activation_providers():
    return [ArrayProvider]


def test_compare_fills_the_layer_table_with_procrustes():
    rng = np.random.default_rng(0)
    a = ArrayModel({"l1": rng.normal(size=(8, 5)), "l2": rng.normal(size=(8, 3))})
    b = ArrayModel({"m1": a.maps["l1"] @ np.linalg.qr(rng.normal(size=(5, 5)))[0], "m2": rng.normal(size=(8, 4))})
    probe = rng.normal(size=(64, 8)).astype(np.float32)
    pm = PluginManager()
    pm.register(SimpleNamespace(neurocorr_activation_providers=neurocorr_activation_providers), "procrustes-test")
    try:
        result = compare(a, b, probe, metric="procrustes", layers_a="*", layers_b="*", plugin_manager=pm)
    except NeurocorrError as exc:
        if "layer-level" in str(exc):
            pytest.skip(f"this neurocorr-core's compare() does not run layer-level metrics yet: {exc}")
        raise
    direct = Procrustes((5, 3), (5, 4))
    direct.update(np.concatenate([probe @ a.maps["l1"], probe @ a.maps["l2"]], 1).astype(np.float32),
                  np.concatenate([probe @ b.maps["m1"], probe @ b.maps["m2"]], 1).astype(np.float32))
    np.testing.assert_allclose(result.layer_table, direct.compute(), atol=1e-6)
    assert result.layer_table[0, 0] == pytest.approx(1.0, abs=1e-6)  # m1 is a rotation of l1

