"""The reference MLP and CNN (see reference.py) built natively in PyTorch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from reference import cnn_weights, mlp_weights


def _set(layer: nn.Module, w: np.ndarray, b: np.ndarray) -> nn.Module:
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        layer.bias.copy_(torch.from_numpy(b))
    return layer


def build_mlp(seed: int = 0) -> nn.Module:
    w = mlp_weights(seed)
    return nn.Sequential(
        _set(nn.Linear(16, 12), w["fc1.w"], w["fc1.b"]), nn.ReLU(),
        _set(nn.Linear(12, 8), w["fc2.w"], w["fc2.b"]), nn.ReLU(),
        _set(nn.Linear(8, 4), w["fc3.w"], w["fc3.b"]),
    ).eval()


def build_cnn(seed: int = 0) -> nn.Module:
    w = cnn_weights(seed)
    return nn.Sequential(
        _set(nn.Conv2d(1, 4, 3), w["conv1.w"], w["conv1.b"]), nn.ReLU(), nn.MaxPool2d(2),
        _set(nn.Conv2d(4, 6, 3), w["conv2.w"], w["conv2.b"]), nn.ReLU(), nn.Flatten(),
        _set(nn.Linear(6, 5), w["fc1.w"], w["fc1.b"]), nn.ReLU(),
        _set(nn.Linear(5, 3), w["fc2.w"], w["fc2.b"]),
    ).eval()
