"""Small PyTorch models for the plugin's tests (importable as 'models:...' references)."""

import torch
from torch import nn


def small_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 7), nn.ReLU(),
                         nn.Linear(7, 10))


def small_cnn(seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(6, 5), nn.ReLU())


def mlp_a() -> nn.Module:
    return small_mlp(0)


def mlp_b() -> nn.Module:
    return small_mlp(1)
