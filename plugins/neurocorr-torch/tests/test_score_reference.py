"""The network score of real torch models against the paper's formula, computed naively:
activations by calling the submodules by hand, r by scipy.stats.pearsonr over each pair."""

import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from models import small_cnn, small_mlp
from neurocorr_core import compare


def manual_outputs(model, x, wanted):
    """Run a Sequential module by module, keeping the outputs of the wanted indices."""
    outs = []
    with torch.no_grad():
        h = torch.from_numpy(x)
        for i, sub in enumerate(model):
            h = sub(h)
            if i in wanted:
                outs.append(h.numpy().astype(np.float64))
    return outs


def neurons(outs, view):
    cols, depths = [], []
    for d, out in enumerate(outs):
        if out.ndim == 4 and view == "channel":
            out = out.mean(axis=(2, 3))
        out = out.reshape(len(out), -1)
        cols += list(out.T)
        depths += [d] * out.shape[1]
    return cols, depths


def paper_score(cols_a, d_a, cols_b, d_b):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best = []
        for a, da in zip(cols_a, d_a, strict=True):
            rs = [stats.pearsonr(a, b)[0] for b in cols_b]
            best.append(max(0.0 if np.isnan(r) else abs(r) / (abs(da - db) + 1)
                            for r, db in zip(rs, d_b, strict=True)))
    return float(np.mean(best))


@pytest.mark.parametrize("view", ["channel", "position"])
def test_cnn_vs_mlp_matches_naive_formula(view):
    x = np.random.default_rng(3).normal(size=(48, 1, 8, 8)).astype(np.float32)
    cnn, mlp = small_cnn(), small_mlp()
    with torch.no_grad():  # a few dead units: a bias no input can overcome
        mlp[3].bias[:2] = -1e4
    cols_a, d_a = neurons(manual_outputs(cnn, x, {1, 4, 7}), view)
    cols_b, d_b = neurons(manual_outputs(mlp, x, {2, 4}), view)
    result = compare(cnn, mlp, x, neurons=view, layers_a="kind:relu", layers_b="kind:relu", batch_size=20)
    assert result.dead_neurons["b"]["4"] == 2
    assert result.score.a_to_b == pytest.approx(paper_score(cols_a, d_a, cols_b, d_b), abs=1e-5)
    assert result.score.b_to_a == pytest.approx(paper_score(cols_b, d_b, cols_a, d_a), abs=1e-5)
