"""Activations of trained networks on real data (scikit-learn's 1,797 digits), for precision
tests: ReLU outputs are sparse, skewed and offset, unlike the Gaussian data of other tests.
Also used by neurocorr-spearman's tests."""

from __future__ import annotations

import warnings

import numpy as np


def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, t = load_digits(return_X_y=True)
    return x / 16.0, t


def mlp_activations(hidden: tuple[int, ...], seed: int) -> np.ndarray:
    """Every hidden ReLU unit of an MLP trained on the digits, (1797, sum(hidden)) float32."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x, t = digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden, max_iter=60, random_state=seed).fit(x, t)
    out, h = [], x
    for w, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1], strict=True):
        h = np.maximum(h @ w + b, 0.0)
        out.append(h)
    return np.hstack(out).astype(np.float32)


def cnn_positions(seed: int) -> np.ndarray:
    """The position view (every C x H x W element) of both conv blocks of a small CNN in the
    paper's shape (conv -> maxpool -> ReLU, twice) trained on the 8 x 8 digits: (1797, 272)."""
    import torch

    x, t = digits()
    torch.manual_seed(seed)
    conv1, conv2 = torch.nn.Conv2d(1, 16, 3), torch.nn.Conv2d(16, 32, 2)
    head = torch.nn.Linear(32 * 2 * 2, 10)

    def blocks(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = torch.relu(torch.nn.functional.max_pool2d(conv1(images), 2))  # 16 x 3 x 3
        return first, torch.relu(conv2(first))  # 32 x 2 x 2 (no pooling left at this size)

    images = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8)
    labels = torch.tensor(t)
    params = [*conv1.parameters(), *conv2.parameters(), *head.parameters()]
    optimiser = torch.optim.Adam(params, lr=0.01)
    for _ in range(3):
        for i in range(0, len(images), 128):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(head(blocks(images[i:i + 128])[1].flatten(1)),
                                                     labels[i:i + 128])
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        first, second = blocks(images)
    return torch.cat([first.flatten(1), second.flatten(1)], 1).numpy().astype(np.float32)


def corrcoef64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.corrcoef in float64 of A's columns against B's, (n_a, n_b); NaN for constant ones."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.corrcoef(a.astype(np.float64).T, b.astype(np.float64).T)
    return r[:a.shape[1], a.shape[1]:]


def spearman64(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scipy.stats.spearmanr in float64 over the live (non-constant) columns: rho and the masks."""
    from scipy.stats import spearmanr

    live_a, live_b = np.ptp(a, axis=0) > 0, np.ptp(b, axis=0) > 0
    rho = spearmanr(a[:, live_a].astype(np.float64), b[:, live_b].astype(np.float64)).statistic
    return rho[:live_a.sum(), live_a.sum():], live_a, live_b
