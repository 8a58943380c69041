"""The experiment's network score, recomputed by hand: activations from the weights, np.corrcoef."""

from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from neurocorr_core import load_probe
from neurocorr_paper.mnist_family import network_score
from neurocorr_paper.settings import CNN_LAYERS
from neurocorr_paper.trained_model import TrainedModel
from neurocorr_paper.trainers import torch_predictor
from neurocorr_torch.demo import CNN, mlp


def trained(name: str, module: torch.nn.Module, layers: str) -> TrainedModel:
    return TrainedModel(name, module, layers, torch_predictor(module), accuracy=float("nan"))


def mlp_neurons(net: torch.nn.Sequential, x: torch.Tensor) -> list[np.ndarray]:
    """Each hidden layer's ReLU output, computed from the weights directly."""
    h, out = x.flatten(1), []
    for layer in net:
        if isinstance(layer, torch.nn.Linear) and layer is not net[-1]:
            h = torch.relu(h @ layer.weight.T + layer.bias)
            out.append(h.detach().numpy())
    return out


def cnn_neurons(net: CNN, x: torch.Tensor) -> list[np.ndarray]:
    """conv -> maxpool 2 -> ReLU twice (dropout off), flattened channel-major per sample."""
    c1, c2 = cast(torch.nn.Conv2d, net.block1[0]), cast(torch.nn.Conv2d, net.block2[0])
    h1 = F.relu(F.max_pool2d(F.conv2d(x, c1.weight, c1.bias, padding=1), 2))
    h2 = F.relu(F.max_pool2d(F.conv2d(h1, c2.weight, c2.bias, padding=1), 2))
    return [h1.flatten(1).detach().numpy(), h2.flatten(1).detach().numpy()]


def paper_score(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[float, float]:
    xa, xb = np.concatenate(a, 1).astype(np.float64), np.concatenate(b, 1).astype(np.float64)
    da = np.concatenate([np.full(layer.shape[1], d) for d, layer in enumerate(a)])
    db = np.concatenate([np.full(layer.shape[1], d) for d, layer in enumerate(b)])
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(xa.T, xb.T)[: xa.shape[1], xa.shape[1]:]
    r = np.nan_to_num(np.abs(r), nan=0.0)
    penalised = r / (np.abs(da[:, None] - db[None, :]) + 1)
    return float(penalised.max(1).mean()), float(penalised.max(0).mean())


def test_fc_to_cnn_score_matches_numpy():
    torch.manual_seed(0)
    net, cnn = mlp([20, 10, 5]), CNN(side=8, padding=1)
    x = torch.from_numpy(np.ascontiguousarray(load_probe("digits").data[:40]))
    res = network_score(trained("net", net, "kind:relu"), trained("cnn", cnn, CNN_LAYERS), x.numpy())
    assert [lr.neurons for lr in res.layers_b] == [32 * 4 * 4, 64 * 2 * 2]
    want_ab, want_ba = paper_score(mlp_neurons(net, x), cnn_neurons(cnn, x))
    assert abs(res.score.a_to_b - want_ab) < 1e-5
    assert abs(res.score.b_to_a - want_ba) < 1e-5


def test_fc_to_fc_score_matches_numpy_and_counts_dead_neurons():
    torch.manual_seed(1)
    a, b = mlp([30]), mlp([12, 12])
    with torch.no_grad():
        # three neurons that never fire: constant, so they score 0
        cast(torch.nn.Linear, b[1]).bias[:3] = -100.0
    x = torch.from_numpy(np.ascontiguousarray(load_probe("digits").data[:60]))
    res = network_score(trained("a", a, "kind:relu"), trained("b", b, "kind:relu"), x.numpy())
    want_ab, want_ba = paper_score(mlp_neurons(a, x), mlp_neurons(b, x))
    assert abs(res.score.a_to_b - want_ab) < 1e-5
    assert abs(res.score.b_to_a - want_ba) < 1e-5
    assert res.layers_b[0].dead >= 3
