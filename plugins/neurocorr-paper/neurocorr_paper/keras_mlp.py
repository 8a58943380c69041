"""The paper's MLP in Keras 3 (TensorFlow backend), trained as the PyTorch one is.

Imported only when ``--mlp-framework keras`` is chosen. The model takes the NCHW probe as it
comes (its input is declared (C, H, W), so neurocorr's tensorflow provider feeds it unmoved)
and its hidden ReLU outputs are separate ``ReLU`` layers, which ``kind:relu`` selects.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from neurocorr_core import NeurocorrError
from neurocorr_torch.demo import Split

from .settings import Settings
from .trained_model import TrainedModel


def import_keras() -> Any:
    """Keras on TensorFlow, quiet, with as many CPU threads as torch uses (a shared 2-core
    machine is slowed down by more threads than free cores, see cli.default_threads)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import keras
        import tensorflow as tf
    except ImportError as exc:
        raise NeurocorrError(f"--mlp-framework keras needs Keras 3 on TensorFlow ({exc}); install it with: "
                             "pip install tensorflow-cpu keras") from None
    if keras.backend.backend() != "tensorflow":
        raise NeurocorrError(f"--mlp-framework keras needs the TensorFlow backend of Keras, but KERAS_BACKEND "
                             f"is {keras.backend.backend()!r}; unset it or set KERAS_BACKEND=tensorflow")
    tf.get_logger().setLevel("ERROR")  # TensorFlow's Python-side notices (e.g. retracing) would flood the log
    threads = torch.get_num_threads()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already started: its thread pools are fixed
        pass
    return keras


def torch_like_init(keras: Any, fan_in: int) -> dict[str, Any]:
    """PyTorch's nn.Linear default: weights and biases uniform in +-1/sqrt(fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)
    return {"kernel_initializer": keras.initializers.RandomUniform(-bound, bound),
            "bias_initializer": keras.initializers.RandomUniform(-bound, bound)}


def build(keras: Any, hidden: Sequence[int], sample_shape: tuple[int, ...], classes: int = 10) -> Any:
    """Flatten, (Dense + ReLU) per hidden layer, Dropout 0.5, Dense ``classes`` (logits)."""
    layers: list[Any] = [keras.Input(shape=sample_shape), keras.layers.Flatten(name="flatten")]
    width = int(np.prod(sample_shape))
    for i, h in enumerate(hidden, 1):
        layers += [keras.layers.Dense(h, name=f"dense{i}", **torch_like_init(keras, width)),
                   keras.layers.ReLU(name=f"relu{i}")]
        width = h
    layers += [keras.layers.Dropout(0.5, name="dropout"),
               keras.layers.Dense(classes, name="logits", **torch_like_init(keras, width))]
    return keras.Sequential(layers, name="mlp")


def predictor(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    def run(images: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(images, dtype=np.float32)
        return np.asarray(model.predict(x, batch_size=1024, verbose=0)).argmax(1)
    return run


def train_mlp(name: str, hidden: Sequence[int], data: Split, settings: Settings, seed: int) -> TrainedModel:
    """The paper's MLP trained in Keras: SGD lr ``settings.mlp_lr`` (no momentum), batch
    ``settings.batch_size``, ``settings.mlp_epochs`` epochs, mean cross-entropy on logits."""
    keras = import_keras()
    keras.utils.set_random_seed(seed)  # initial weights, dropout masks, batch order
    x_train, y_train = data.x_train.numpy(), data.y_train.numpy()
    model = build(keras, hidden, tuple(x_train.shape[1:]))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=settings.mlp_lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if settings.mlp_epochs > 0:
        model.fit(x_train, y_train, batch_size=settings.batch_size, epochs=settings.mlp_epochs,
                  shuffle=True, verbose=0)
    predict = predictor(model)
    accuracy = float((predict(data.x_test.numpy()) == data.y_test.numpy()).mean())
    return TrainedModel(name, model, "kind:relu", predict, accuracy)
