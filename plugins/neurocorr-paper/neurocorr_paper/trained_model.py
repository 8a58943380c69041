"""What every trainer returns, whatever its framework: :class:`TrainedModel`.

Its own module because the PyTorch trainers (:mod:`.trainers`) choose the Keras and JAX ones
(:mod:`.keras_mlp`, :mod:`.jax_mlp`) by name while those return the same kind of result: with
the class in :mod:`.trainers` the framework trainers and the chooser imported each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class TrainedModel:
    """``model``: passed to ``neurocorr_core.compare``; ``layers``: the selector of the
    neurons the paper compares; ``predict``: images (N, C, H, W) float32 -> classes (N,)."""

    name: str
    model: object
    layers: str
    predict: Callable[[np.ndarray], np.ndarray]
    accuracy: float
