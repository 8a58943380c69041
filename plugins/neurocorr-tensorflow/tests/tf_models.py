"""Small Keras models shared by the tensorflow provider's tests."""

import os
import tempfile
from functools import cache

import keras
import numpy as np
from keras import layers


def functional_cnn() -> keras.Model:
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(4, 3, padding="same", name="conv1")(x)
    x = layers.Activation("relu", name="act1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(6, 3, name="conv2")(x)
    x = layers.ReLU(name="relu2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(3, name="fc")(x))


def sequential_mlp() -> keras.Model:
    """No Input layer: the provider has to build it for the probe's shape."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([layers.Dense(10), layers.ReLU(), layers.Dense(6, activation="tanh"),
                             layers.Dense(3)])


class Subclassed(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.conv = layers.Conv2D(3, 3)
        self.act = layers.Activation("relu")
        self.flat = layers.Flatten()
        self.fc = layers.Dense(4)

    def call(self, x):
        return self.fc(self.flat(self.act(self.conv(x))))


class SharedCalls(keras.Model):
    """One ReLU applied after each of three convs (EfficientNet's shared activations) and one conv
    used twice: layers conv1, act, conv2, act#1, conv2#1, act#2, gap, fc."""

    def __init__(self, data_format: str = "channels_last") -> None:
        super().__init__()
        self.conv1 = layers.Conv2D(4, 3, padding="same", data_format=data_format)
        self.conv2 = layers.Conv2D(4, 3, padding="same", data_format=data_format)
        self.act = layers.ReLU()
        self.gap = layers.GlobalAveragePooling2D(data_format=data_format)
        self.fc = layers.Dense(3)

    def call(self, x):
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        x = self.act(self.conv2(x))
        return self.fc(self.gap(x))


@cache
def saved(kind: str) -> str:
    folder = tempfile.mkdtemp(prefix="neurocorr-tf-")
    model = functional_cnn()
    if kind == "keras":
        path = os.path.join(folder, "cnn.keras")
        model.save(path)
    else:
        path = os.path.join(folder, "cnn_savedmodel")
        model.export(path, verbose=False)
    return path


def image_probe() -> np.ndarray:
    return np.random.default_rng(0).random((12, 1, 8, 8), dtype=np.float32)


def nested_cnn() -> keras.Model:
    """A functional model holding a Sequential block without an Input of its own (itself holding a
    Sequential) and a nested functional block: layers stem, block1/{conv, relu, pair/{conv, relu}},
    block2/{conv, act, pool}, gap, fc."""
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(4, 3, padding="same", name="stem")(x)
    pair = keras.Sequential([layers.Conv2D(4, 3, padding="same", name="conv"), layers.ReLU(name="relu")],
                            name="pair")
    x = keras.Sequential([layers.Conv2D(5, 3, name="conv"), layers.ReLU(name="relu"), pair], name="block1")(x)
    y = block_input = keras.Input((6, 6, 4))
    y = layers.Conv2D(6, 3, name="conv")(y)
    y = layers.Activation("relu", name="act")(y)
    y = layers.MaxPooling2D(2, name="pool")(y)
    x = keras.Model(block_input, y, name="block2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(3, name="fc")(x))
