"""The torch builders reproduce the numpy reference (so other frameworks can be held to it)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from builders_torch import build_cnn, build_mlp  # noqa: E402
from neurocorr_core import open_model  # noqa: E402
from neurocorr_core.selection import select_layers  # noqa: E402
from reference import cnn_forward, cnn_probe, cnn_weights, mlp_forward, mlp_probe, mlp_weights  # noqa: E402


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_torch_matches_numpy_reference(kind):
    model, probe, ref = ((build_mlp(), mlp_probe(), mlp_forward(mlp_weights(), mlp_probe()))
                         if kind == "mlp" else (build_cnn(), cnn_probe(), cnn_forward(cnn_weights(), cnn_probe())))
    prov = open_model(model)
    layers = select_layers(prov.layers(probe[:2]), "kind:activation", kind)
    out = next(prov.activations([probe], [la.name for la in layers]))
    assert len(layers) == len(ref)
    for layer, expected in zip(layers, ref, strict=True):
        np.testing.assert_allclose(out[layer.name], expected, rtol=1e-4, atol=1e-5)
