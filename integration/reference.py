"""The shared reference models of the cross-framework tests, as plain numpy.

Every framework builds the same two networks natively from these weights (given in
PyTorch layout: dense (out, in), conv (out, in, kh, kw)); each framework's builder lives in
``builders_<framework>.py`` and converts the layout itself.

MLP:  x (N, 16) -> dense 16->12 -> ReLU -> dense 12->8 -> ReLU -> dense 8->4
CNN:  x (N, 1, 8, 8) -> conv 1->4 3x3 valid -> ReLU -> maxpool 2 -> conv 4->6 3x3 valid
      -> ReLU -> flatten (6 values: 1x1 spatial, so NCHW and NHWC flatten alike)
      -> dense 6->5 -> ReLU -> dense 5->3
The ReLU outputs (3 in the CNN, 2 in the MLP) are the layers compared (``kind:activation``).
"""

from __future__ import annotations

import numpy as np


def mlp_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "fc1.w": rng.normal(0, 0.4, (12, 16)).astype(np.float32), "fc1.b": rng.normal(0, 0.1, 12).astype(np.float32),
        "fc2.w": rng.normal(0, 0.4, (8, 12)).astype(np.float32), "fc2.b": rng.normal(0, 0.1, 8).astype(np.float32),
        "fc3.w": rng.normal(0, 0.4, (4, 8)).astype(np.float32), "fc3.b": rng.normal(0, 0.1, 4).astype(np.float32),
    }


def cnn_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "conv1.w": rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32),
        "conv1.b": rng.normal(0, 0.1, 4).astype(np.float32),
        "conv2.w": rng.normal(0, 0.3, (6, 4, 3, 3)).astype(np.float32),
        "conv2.b": rng.normal(0, 0.1, 6).astype(np.float32),
        "fc1.w": rng.normal(0, 0.4, (5, 6)).astype(np.float32), "fc1.b": rng.normal(0, 0.1, 5).astype(np.float32),
        "fc2.w": rng.normal(0, 0.4, (3, 5)).astype(np.float32), "fc2.b": rng.normal(0, 0.1, 3).astype(np.float32),
    }


def mlp_probe(n: int = 64, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, 16)).astype(np.float32)


def cnn_probe(n: int = 64, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, 1, 8, 8)).astype(np.float32)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def mlp_forward(w: dict[str, np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """The ReLU outputs, in order, computed with numpy alone (float64)."""
    h1 = relu(x @ w["fc1.w"].T.astype(np.float64) + w["fc1.b"])
    h2 = relu(h1 @ w["fc2.w"].T + w["fc2.b"])
    return [h1, h2]


def conv2d(x: np.ndarray, k: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Valid 2-D cross-correlation, NCHW input, OIHW kernel."""
    h, wd = x.shape[2:]
    o, _, kh, kw = k.shape
    out = np.zeros((len(x), o, h - kh + 1, wd - kw + 1))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,oc->nohw", x[:, :, i:i + h - kh + 1, j:j + wd - kw + 1], k[:, :, i, j])
    return out + b[None, :, None, None]


def maxpool2(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def cnn_forward(w: dict[str, np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """The ReLU outputs (channels-first), in order, computed with numpy alone (float64)."""
    a1 = relu(conv2d(x.astype(np.float64), w["conv1.w"], w["conv1.b"]))
    a2 = relu(conv2d(maxpool2(a1), w["conv2.w"], w["conv2.b"]))
    a3 = relu(a2.reshape(len(x), -1) @ w["fc1.w"].T + w["fc1.b"])
    return [a1, a2, a3]
