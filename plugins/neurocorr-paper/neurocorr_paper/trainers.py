"""Who trains the models: a trained model is whatever a neurocorr provider accepts, plus the
layer selector of its neurons and a ``predict`` function for the accuracy tables.

The MLPs are trained by a framework chosen by name (``--mlp-framework``: ``torch``, ``keras``,
``jax``); the CNNs (target and surrogate) are always PyTorch, so a cross-framework run compares
Keras and JAX MLPs with the PyTorch CNN through the ordinary ``compare`` (each side's provider
is picked by its model's type). Every trainer builds the same network (Flatten, Linear + ReLU
per hidden layer, dropout 0.5, Linear 10) with PyTorch's default initialisation (weights and
biases uniform in +-1/sqrt(fan_in)), trains it with plain SGD (lr 0.1, batch 128, mean
cross-entropy, reshuffled every epoch) and selects the hidden ReLU outputs as its neurons.
What differs between frameworks is only their random streams (initial weights, dropout masks,
batch order) and floating-point summation order. Keras and JAX are imported only when their
trainer runs (:mod:`.keras_mlp`, :mod:`.jax_mlp`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from neurocorr_torch.demo import CNN, Split, mlp, predict, train

from .settings import CNN_LAYERS, Settings
from .trained_model import TrainedModel

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
    """The paper's CNN (:class:`PaperCNN`): (conv 3x3 -> maxpool 2 -> ReLU) x 2 (Dropout2d in the
    second), dense 100 with dropout 0.5, dense 10; Adam for ``epochs`` (default
    ``settings.cnn_epochs``). Its neurons are the two conv blocks' outputs."""
    torch.manual_seed(seed)
    net = cnn_like(data, settings)
    epochs = settings.cnn_epochs if epochs is None else epochs
    acc = train(net, data, epochs=epochs, optimiser="adam", lr=settings.cnn_lr,
                batch_size=settings.batch_size, seed=seed, on_epoch=on_epoch)
    return TrainedModel(name, net, CNN_LAYERS, torch_predictor(net), acc)


class PaperCNN(CNN):
    """The official notebooks' CNN: :class:`neurocorr_torch.demo.CNN` (conv 3x3 -> maxpool 2 ->
    ReLU, twice, Dropout2d 0.5 in the second; dense 100; dense classes) plus the notebooks'
    ``fc1_drop``, dropout 0.5 on the dense-100 layer (``relu(fc1_drop(fc1(x)))``). The weights
    are initialised exactly as demo.CNN's (same layers, same order); only the dropout differs.
    Outputs logits (the notebooks end in a softmax; :mod:`.attack` applies it where it matters)."""

    def __init__(self, channels: int = 1, side: int = 8, classes: int = 10, padding: int = 1) -> None:
        super().__init__(channels=channels, side=side, classes=classes, padding=padding)
        flatten, fc1, relu, fc2 = dict(self.named_children())["head"].children()  # demo.CNN's head
        self.head = torch.nn.Sequential(flatten, fc1, torch.nn.Dropout(0.5), relu, fc2)


def cnn_like(data: Split, settings: Settings) -> CNN:
    """A newly initialised paper CNN for ``data``'s image size (uses torch's global RNG)."""
    channels, side = int(data.x_train.shape[1]), int(data.x_train.shape[-1])
    return PaperCNN(channels=channels, side=side, padding=settings.padding)


def keras_mlp(name: str, hidden: Sequence[int], data: Split, settings: Settings, seed: int) -> TrainedModel:
    from .keras_mlp import train_mlp

    return train_mlp(name, hidden, data, settings, seed)


def jax_mlp(name: str, hidden: Sequence[int], data: Split, settings: Settings, seed: int) -> TrainedModel:
    from .jax_mlp import train_mlp

    return train_mlp(name, hidden, data, settings, seed)


MLP_TRAINERS: dict[str, Callable[..., TrainedModel]] = {"torch": torch_mlp, "keras": keras_mlp, "jax": jax_mlp}
# What each framework's trainer imports, how to install it, and the neurocorr provider that reads its models.
REQUIREMENTS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "torch": (("torch",), "pip install torch", "torch"),
    "keras": (("keras", "tensorflow"), "pip install tensorflow-cpu keras", "tensorflow"),
    "jax": (("jax", "flax", "optax"), "pip install jax flax optax", "jax"),
}


def require(framework: str) -> None:
    """Fail now, with the install command, if ``framework``'s packages or its neurocorr provider
    are missing (without importing the framework: that waits until its trainer runs)."""
    import importlib.util

    from neurocorr_core import NeurocorrError, get_plugin_manager

    modules, install, provider = REQUIREMENTS[framework]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise NeurocorrError(f"--mlp-framework {framework} needs {', '.join(missing)}, which is not installed; "
                             f"install it with: {install}")
    get_plugin_manager().provider(provider)  # its own error names the plugin to install
