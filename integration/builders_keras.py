"""The reference MLP and CNN (see reference.py) built natively in Keras 3.

Weights arrive in PyTorch layout and are converted: dense (out, in) -> (in, out), conv
kernels OIHW -> HWIO. The CNN takes NHWC images (Keras' convention); the ReLUs are layers of
their own so ``kind:activation`` selects them. The MLP is a Sequential model, the CNN a
functional one, so both Keras model styles are held to the numpy reference.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
from keras import layers

from reference import cnn_weights, mlp_weights


def _dense(w: np.ndarray, b: np.ndarray, name: str, activation: str | None = None) -> layers.Dense:
    layer = layers.Dense(w.shape[0], activation=activation, name=name)
    layer.build((None, w.shape[1]))
    layer.set_weights([w.T, b])  # (out, in) -> (in, out)
    return layer


def _conv(w: np.ndarray, b: np.ndarray, name: str) -> layers.Conv2D:
    out_ch, in_ch, kh, kw = w.shape
    layer = layers.Conv2D(out_ch, (kh, kw), name=name)
    layer.build((None, None, None, in_ch))
    layer.set_weights([w.transpose(2, 3, 1, 0), b])  # OIHW -> HWIO
    return layer


def build_mlp(seed: int = 0) -> keras.Model:
    """16 -> dense 12 -> ReLU -> dense 8 -> ReLU -> dense 4, as a Sequential model."""
    w = mlp_weights(seed)
    return keras.Sequential([
        keras.Input((16,)),
        _dense(w["fc1.w"], w["fc1.b"], "fc1"), layers.ReLU(name="relu1"),
        _dense(w["fc2.w"], w["fc2.b"], "fc2"), layers.ReLU(name="relu2"),
        _dense(w["fc3.w"], w["fc3.b"], "fc3"),
    ], name="mlp")


def build_mlp_fused(seed: int = 0) -> keras.Model:
    """The MLP as Keras users often write it: the ReLUs fused into the Dense layers."""
    w = mlp_weights(seed)
    return keras.Sequential([
        keras.Input((16,)),
        _dense(w["fc1.w"], w["fc1.b"], "fc1", "relu"), _dense(w["fc2.w"], w["fc2.b"], "fc2", "relu"),
        _dense(w["fc3.w"], w["fc3.b"], "fc3"),
    ], name="mlp_fused")


def build_cnn(seed: int = 0) -> keras.Model:
    """(8, 8, 1) NHWC -> conv 4 -> ReLU -> maxpool 2 -> conv 6 -> ReLU -> flatten -> dense 5 ->
    ReLU -> dense 3, as a functional model."""
    w = cnn_weights(seed)
    x = inputs = keras.Input((8, 8, 1), name="image")
    x = _conv(w["conv1.w"], w["conv1.b"], "conv1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = _conv(w["conv2.w"], w["conv2.b"], "conv2")(x)
    x = layers.ReLU(name="relu2")(x)
    x = layers.Flatten(name="flatten")(x)  # 1x1 spatial: NHWC and NCHW flatten alike
    x = _dense(w["fc1.w"], w["fc1.b"], "fc1")(x)
    x = layers.ReLU(name="relu3")(x)
    x = _dense(w["fc2.w"], w["fc2.b"], "fc2")(x)
    return keras.Model(inputs, x, name="cnn")
