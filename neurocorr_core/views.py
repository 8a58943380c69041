"""Neuron views: how a layer output (batch, C, H, W) or (batch, F) becomes (batch, neurons).

The view is chosen by name, the ``neurons`` keyword of compare() and grid() (``--neurons``):
``channel`` or ``position`` (:data:`VIEWS`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .errors import NeurocorrError
from .interfaces import ActivationProvider

VIEWS = ("channel", "position")


def check_neurons(neurons: str) -> str:
    """``neurons``, once it is known to name a view."""
    if neurons not in VIEWS:
        raise NeurocorrError(f"unknown neuron view {neurons!r}; choose one of {', '.join(VIEWS)}")
    return neurons


def neuron_count(shape: tuple[int, ...], neurons: str) -> int:
    """Neurons of a layer with per-sample output ``shape`` in the view ``neurons``."""
    if neurons == "channel" or len(shape) <= 1:
        return int(shape[0]) if shape else 1
    return int(np.prod(shape))


def apply_view(output: np.ndarray, neurons: str) -> np.ndarray:
    """``channel``: the spatial mean of every channel (one neuron per channel);
    ``position``: every C x H x W element, flattened C-major, as the seed paper does."""
    batch = output.shape[0]
    if output.ndim == 1:
        return output.reshape(batch, 1)
    if output.ndim == 2:
        return output
    if neurons == "channel":
        return output.reshape(batch, output.shape[1], -1).mean(axis=2)
    return output.reshape(batch, -1)


def neuron_batches(provider: ActivationProvider, batches: Iterable[np.ndarray], layers: Sequence[str],
                   neurons: str, label: str) -> Iterator[dict[str, np.ndarray]]:
    """Each probe batch's outputs of ``layers`` as float32 (batch, neurons) arrays in the view
    ``neurons``.

    A provider that can take channel means inside its framework does so (whole feature maps
    never reach numpy); NaN or Inf outputs are refused, naming the layer of model ``label``.
    """
    activations: Any = provider.activations  # the keyword is optional, declared by the class's flag
    pushdown = neurons == "channel" and type(provider).channel_means
    outputs = activations(batches, layers, channel_means=True) if pushdown else activations(batches, layers)
    for out in outputs:
        yield {name: _finite(apply_view(out[name], neurons), name, label).astype(np.float32, copy=False)
               for name in layers}


def _finite(values: np.ndarray, layer: str, label: str) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is counted exactly below
        if np.isfinite(values.sum()):  # NaN or Inf anywhere makes the sum non-finite
            return values
    bad = values.size - int(np.isfinite(values).sum())
    if bad:
        raise NeurocorrError(f"layer {layer!r} of {label} produced {bad} NaN/Inf values on this probe; "
                             "check the model's weights and the probe's value range, or leave the layer out")
    return values
