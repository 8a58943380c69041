"""The documented precision (|rho - rho_float64| <= 1e-6, docs/plugins/spearman.md) on
activations of trained networks (digits MLPs; the position view of small CNNs), in memory and
spilled to disk, against scipy.stats.spearmanr in float64."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# the trained networks are built once, by neurocorr-pearson's tests
sys.path.insert(0, str(Path(__file__).parents[2] / "neurocorr-pearson" / "tests"))
from neurocorr_spearman import Spearman
from real_activations import cnn_positions, mlp_activations, spearman64

pytest.importorskip("sklearn")
BOUND = 1e-6


@pytest.fixture(scope="module")
def mlps() -> tuple[np.ndarray, np.ndarray]:
    return mlp_activations((100,), seed=0), mlp_activations((60, 40), seed=1)


@pytest.fixture(scope="module")
def cnns() -> tuple[np.ndarray, np.ndarray]:
    pytest.importorskip("torch")
    return cnn_positions(seed=0), cnn_positions(seed=1)


@pytest.mark.parametrize("budget", [2**30, 400_000])  # in memory; spilled, in small chunks
@pytest.mark.parametrize("nets", ["mlps", "cnns"])
def test_within_documented_bound_of_scipy(nets, budget, request, tmp_path):
    a, b = request.getfixturevalue(nets)
    ref, live_a, live_b = spearman64(a, b)
    with Spearman([a.shape[1]], [b.shape[1]], memory_budget=budget, tmp_dir=str(tmp_path)) as m:
        for i in range(0, a.shape[0], 128):
            m.update(a[i:i + 128], b[i:i + 128])
        got = m.compute()
        assert m.spilled == (budget < 2**30)
    assert np.isnan(got[~live_a]).all() and np.isnan(got[:, ~live_b]).all()
    err = np.max(np.abs(got[np.ix_(live_a, live_b)] - ref))
    assert err <= BOUND, f"{nets}, budget {budget}: max |rho - rho64| = {err:.2e}"
    assert np.max(np.abs(ref)) > 0.8
