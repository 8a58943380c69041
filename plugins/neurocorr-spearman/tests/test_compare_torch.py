"""End to end: compare(metric="spearman") on two torch MLPs against the paper's score written
naively with scipy.stats.spearmanr over every neuron pair."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from neurocorr_core import compare

torch = pytest.importorskip("torch")
pytest.importorskip("neurocorr_torch")


def mlp(seed: int, hidden: list[int]):
    torch.manual_seed(seed)
    layers, width = [], 12
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 3))


def relu_outputs(model, x) -> tuple[list[np.ndarray], list[int]]:
    cols, depths, depth = [], [], 0
    with torch.no_grad():
        h = torch.from_numpy(x)
        for sub in model:
            h = sub(h)
            if isinstance(sub, torch.nn.ReLU):
                cols += list(h.numpy().astype(np.float64).T)
                depths += [depth] * h.shape[1]
                depth += 1
    return cols, depths


def paper_score(cols_a, d_a, cols_b, d_b) -> float:
    best = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant (dead) ReLUs
        for a, da in zip(cols_a, d_a, strict=True):
            rhos = [stats.spearmanr(a, b).statistic for b in cols_b]
            best.append(max(0.0 if np.isnan(r) else abs(r) / (abs(da - db) + 1)
                            for r, db in zip(rhos, d_b, strict=True)))
    return float(np.mean(best))


def test_compare_with_spearman_matches_naive_paper_score():
    x = np.random.default_rng(0).normal(size=(60, 12)).astype(np.float32)
    net_a, net_b = mlp(1, [10, 6]), mlp(2, [8])
    with torch.no_grad():
        net_b[0].bias[:2] = -1e4  # two dead neurons: constant, NaN rho, scored 0
    result = compare(net_a, net_b, x, metric="spearman", layers_a="kind:activation",
                     layers_b="kind:activation", batch_size=16)
    cols_a, d_a = relu_outputs(net_a, x)
    cols_b, d_b = relu_outputs(net_b, x)
    assert result.score.a_to_b == pytest.approx(paper_score(cols_a, d_a, cols_b, d_b), abs=1e-6)
    assert result.score.b_to_a == pytest.approx(paper_score(cols_b, d_b, cols_a, d_a), abs=1e-6)
    assert result.config["metric"] == "spearman"
    assert sum(result.dead_neurons["b"].values()) == 2
