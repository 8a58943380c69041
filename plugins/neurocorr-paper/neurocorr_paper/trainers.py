"""Who trains the models: a trained model is whatever a neurocorr provider accepts, plus the
layer selector of its neurons and a ``predict`` function for the accuracy tables.

The MLPs are trained by a framework chosen by name (``--mlp-framework``); the CNNs (target
and surrogate) are always PyTorch. A cross-framework run (the paper's MLPs trained in Keras
or JAX, compared with the PyTorch CNN) adds a trainer to :data:`MLP_TRAINERS` with the
:data:`MLPTrainer` signature; nothing else in the experiment changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from neurocorr_torch.demo import CNN, Split, mlp, predict, train

from .settings import CNN_LAYERS, Settings


@dataclass
class TrainedModel:
    """``model``: passed to ``neurocorr_core.compare``; ``layers``: the selector of the
    neurons the paper compares; ``predict``: images (N, C, H, W) float32 -> classes (N,)."""

    name: str
    model: object
    layers: str
    predict: Callable[[np.ndarray], np.ndarray]
    accuracy: float


MLPTrainer = Callable[[str, Sequence[int], Split, Settings, int], TrainedModel]


def torch_predictor(module: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def run(images: np.ndarray) -> np.ndarray:
        return predict(module, torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))).numpy()
    return run


def torch_mlp(name: str, hidden: Sequence[int], data: Split, settings: Settings, seed: int,
              on_epoch: Callable[[int], None] | None = None) -> TrainedModel:
    """The paper's MLP in PyTorch: SGD, cross-entropy, dropout 0.5 before the output."""
    torch.manual_seed(seed)
    net = mlp(hidden, inputs=int(np.prod(data.x_train.shape[1:])))
    acc = train(net, data, epochs=settings.mlp_epochs, optimiser="sgd", lr=settings.mlp_lr,
                batch_size=settings.batch_size, seed=seed, on_epoch=on_epoch)
    return TrainedModel(name, net, "kind:relu", torch_predictor(net), acc)


def torch_cnn(name: str, data: Split, settings: Settings, seed: int, epochs: int | None = None,
              on_epoch: Callable[[int], None] | None = None) -> TrainedModel:
    """The paper's CNN: (conv 3x3 -> maxpool 2 -> ReLU) x 2 (Dropout2d in the second), dense
    100, dense 10; Adam for ``epochs`` (default ``settings.cnn_epochs``). Its neurons are the
    two conv blocks' outputs."""
    torch.manual_seed(seed)
    net = cnn_like(data, settings)
    epochs = settings.cnn_epochs if epochs is None else epochs
    acc = train(net, data, epochs=epochs, optimiser="adam", lr=settings.cnn_lr,
                batch_size=settings.batch_size, seed=seed, on_epoch=on_epoch)
    return TrainedModel(name, net, CNN_LAYERS, torch_predictor(net), acc)


def cnn_like(data: Split, settings: Settings) -> CNN:
    """A newly initialised paper CNN for ``data``'s image size (uses torch's global RNG)."""
    channels, side = int(data.x_train.shape[1]), int(data.x_train.shape[-1])
    return CNN(channels=channels, side=side, padding=settings.padding)


MLP_TRAINERS: dict[str, Callable[..., TrainedModel]] = {"torch": torch_mlp}
