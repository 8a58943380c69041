"""Neuron views: how a layer output (batch, C, H, W) or (batch, F) becomes (batch, neurons).

The view is chosen by name, the ``neurons`` keyword of compare() and grid() (``--neurons``):
``channel`` or ``position`` (:data:`VIEWS`); for sequence outputs (batch, tokens, features),
``token`` (every token a sample), ``mean`` or ``first`` (one pooled row per sequence). A provider
of sequences yields, beside its layers, the (batch, tokens) mask of the positions that count
under the key :data:`MASK`: padding then enters no statistic (docs/transformers.md)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .errors import NeurocorrError
from .interfaces import ActivationProvider

VIEWS = ("channel", "position", "token", "mean", "first")
SEQUENCE_VIEWS = VIEWS[2:]
#: The key of the boolean (batch, tokens) mask of real (not padded) positions in a provider's output.
MASK = "__mask__"


def check_neurons(neurons: str) -> str:
    """``neurons``, once it is known to name a view."""
    if neurons not in VIEWS:
        raise NeurocorrError(f"unknown neuron view {neurons!r}; choose one of {', '.join(VIEWS)}")
    return neurons


def neuron_count(shape: tuple[int, ...], neurons: str) -> int:
    """Neurons of a layer with per-sample output ``shape`` in the view ``neurons``."""
    if neurons in SEQUENCE_VIEWS:  # (tokens, features): the features are the neurons
        return int(shape[-1]) if shape else 1
    if neurons == "channel" or len(shape) <= 1:
        return int(shape[0]) if shape else 1
    return int(np.prod(shape))


def apply_view(output: np.ndarray, neurons: str, mask: np.ndarray | None = None) -> np.ndarray:
    """``channel``: the spatial mean of every channel (one neuron per channel);
    ``position``: every C x H x W element, flattened C-major, as the seed paper does.
    Sequences (batch, tokens, features) with ``mask`` (batch, tokens), True where a token counts
    (None: all do): ``token`` gives (tokens that count, features) in order, ``mean`` their mean
    per sequence, ``first`` each sequence's first token that counts (BERT's [CLS])."""
    batch = output.shape[0]
    if neurons in SEQUENCE_VIEWS and output.ndim == 3:
        keep = np.ones(output.shape[:2], bool) if mask is None else np.asarray(mask, bool)
        if neurons == "token":
            return output[keep]
        if not keep.any(axis=1).all():
            raise NeurocorrError(f"{int((~keep.any(axis=1)).sum())} probe sequence(s) have no token that "
                                 f"counts (all masked): the {neurons!r} view needs one; drop empty sequences")
        if neurons == "first":
            return output[np.arange(batch), keep.argmax(axis=1)]
        # where(), not a product with the mask: NaN or Inf at a padded position must not leak in
        return np.where(keep[:, :, None], output, 0).sum(axis=1) / keep.sum(axis=1, keepdims=True)
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
        mask = out.get(MASK)
        yield {name: _finite(_view(out[name], neurons, mask, name, label), name, label).astype(np.float32, copy=False)
               for name in layers}


def _view(output: np.ndarray, neurons: str, mask: np.ndarray | None, layer: str, label: str) -> np.ndarray:
    """A layer's view, once the view suits its output: token rows come only from (batch, tokens,
    features) outputs, and a masked sequence is never averaged or flattened over its padding."""
    sequence = mask is not None and output.ndim == 3
    if (neurons == "token" and output.ndim != 3) or (sequence and neurons not in SEQUENCE_VIEWS):
        raise NeurocorrError(
            f"layer {layer!r} of {label} has output shape {output.shape[1:]} per sample; the {neurons!r} view "
            + ("needs (tokens, features) outputs: leave the layer out, or use --neurons mean/first"
               if neurons == "token" else "would count padded tokens: use --neurons token, mean or first"))
    return apply_view(output, neurons, mask)


def _finite(values: np.ndarray, layer: str, label: str) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is counted exactly below
        if np.isfinite(values.sum()):  # NaN or Inf anywhere makes the sum non-finite
            return values
    bad = values.size - int(np.isfinite(values).sum())
    if bad:
        raise NeurocorrError(f"layer {layer!r} of {label} produced {bad} NaN/Inf values on this probe; "
                             "check the model's weights and the probe's value range, or leave the layer out")
    return values
