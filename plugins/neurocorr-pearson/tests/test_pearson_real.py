"""The documented precision (|r - r_float64| <= 1e-6, docs/plugins/pearson.md) on activations of
trained networks: two digits MLPs, and the position view of two small CNNs, streamed and tiled,
in the default float32 path, against numpy.corrcoef in float64."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from neurocorr_pearson import Pearson
from real_activations import cnn_positions, corrcoef64, mlp_activations

pytest.importorskip("sklearn")
BOUND = 1e-6


@pytest.fixture(scope="module")
def mlps() -> tuple[np.ndarray, np.ndarray]:
    return mlp_activations((100,), seed=0), mlp_activations((60, 40), seed=1)


@pytest.fixture(scope="module")
def cnns() -> tuple[np.ndarray, np.ndarray]:
    pytest.importorskip("torch")
    return cnn_positions(seed=0), cnn_positions(seed=1)


def pearson(a, b, tiled: bool, batch: int) -> np.ndarray:
    m = Pearson([a.shape[1]], [b.shape[1]], tiled=tiled, samples=a.shape[0] if tiled else None)
    for i in range(0, a.shape[0], batch):
        m.update(a[i:i + batch], b[i:i + batch])
    return m.compute()


@pytest.mark.parametrize("tiled", [False, True])
@pytest.mark.parametrize("batch", [128, 1797])
@pytest.mark.parametrize("nets", ["mlps", "cnns"])
def test_within_documented_bound_of_float64(nets, batch, tiled, request):
    a, b = request.getfixturevalue(nets)
    ref = corrcoef64(a, b)
    got = pearson(a, b, tiled, batch)
    assert np.array_equal(np.isnan(got), np.isnan(ref))  # the same dead neurons
    err = np.nanmax(np.abs(got - ref))
    assert err <= BOUND, f"{nets}, batch {batch}, tiled={tiled}: max |r - r64| = {err:.2e}"
    assert np.nanmax(np.abs(ref)) > 0.8  # real structure: strongly correlated pairs exist
