"""Neuron views: how a layer output (batch, C, H, W) or (batch, F) becomes (batch, neurons)."""

from __future__ import annotations

import numpy as np

from .errors import NeurocorrError

VIEWS = ("channel", "position")


def check_view(view: str) -> str:
    if view not in VIEWS:
        raise NeurocorrError(f"unknown neuron view {view!r}; choose one of {', '.join(VIEWS)}")
    return view


def neuron_count(shape: tuple[int, ...], view: str) -> int:
    """Neurons of a layer with per-sample output ``shape`` under ``view``."""
    if view == "channel" or len(shape) <= 1:
        return int(shape[0]) if shape else 1
    return int(np.prod(shape))


def apply_view(output: np.ndarray, view: str) -> np.ndarray:
    """``channel``: the spatial mean of every channel (one neuron per channel);
    ``position``: every C x H x W element, flattened C-major, as the seed paper does."""
    batch = output.shape[0]
    if output.ndim == 1:
        return output.reshape(batch, 1)
    if output.ndim == 2:
        return output
    if view == "channel":
        return output.reshape(batch, output.shape[1], -1).mean(axis=2)
    return output.reshape(batch, -1)
