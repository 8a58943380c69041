"""``neurocorr demo``: the seed paper's MNIST experiment in miniature, on real digits.

Five MLPs of 100 hidden units in total and a two-conv-block CNN are trained on
scikit-learn's 1,797 real 8x8 digits; every MLP is then compared with the CNN (ReLU outputs
of the MLPs; the CNN's conv blocks in ``position`` view; the paper's depth penalty).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from neurocorr_core import compare, load_probe

MLP_SHAPES: dict[str, list[int]] = {
    "net1": [100], "net2": [60, 40], "net3": [40, 60], "net4": [50, 50], "net5": [20] * 5,
}


def mlp(hidden: Sequence[int], inputs: int = 64, classes: int = 10) -> nn.Sequential:
    """The paper's MLP: Linear+ReLU per hidden layer, dropout 0.5 before the output."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = inputs
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Dropout(0.5), nn.Linear(width, classes))


class CNN(nn.Module):
    """The paper's CNN: (conv 3x3 -> maxpool 2 -> ReLU) x 2, dense 100, dense classes.
    ``padding=1`` keeps 8x8 digits large enough for two pooling steps."""

    def __init__(self, channels: int = 1, side: int = 8, classes: int = 10, padding: int = 1) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(channels, 32, 3, padding=padding), nn.MaxPool2d(2), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(32, 64, 3, padding=padding), nn.Dropout2d(0.5),
                                    nn.MaxPool2d(2), nn.ReLU())
        side = ((side + 2 * padding - 2) // 2 + 2 * padding - 2) // 2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * side * side, 100), nn.ReLU(),
                                  nn.Linear(100, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block2(self.block1(x)))


@dataclass
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def split(data: np.ndarray, labels: np.ndarray, test_fraction: float, seed: int) -> Split:
    order = np.random.default_rng(seed).permutation(len(data))
    n_test = int(len(data) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    t = torch.from_numpy
    return Split(t(np.ascontiguousarray(data[train])), t(labels[train]),
                 t(np.ascontiguousarray(data[test])), t(labels[test]))


def train(model: nn.Module, data: Split, *, epochs: int, optimiser: str, lr: float,
          batch_size: int = 128, seed: int = 0, on_epoch: Callable[[int], None] | None = None) -> float:
    """Minibatch training with cross-entropy; returns test accuracy."""
    fit(model, data.x_train, data.y_train, epochs=epochs, optimiser=optimiser, lr=lr,
        batch_size=batch_size, seed=seed, on_epoch=on_epoch)
    return accuracy(model, data.x_test, data.y_test)


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, optimiser: str, lr: float,
        batch_size: int = 128, seed: int = 0, on_epoch: Callable[[int], None] | None = None) -> None:
    """Minibatch training with cross-entropy on ``x`` (N, ...) and labels ``y`` (N,);
    ``optimiser`` is ``sgd`` or ``adam``; ``on_epoch(epoch)`` is called after each epoch."""
    torch.manual_seed(seed)
    opt = (torch.optim.SGD(model.parameters(), lr=lr) if optimiser == "sgd"
           else torch.optim.Adam(model.parameters(), lr=lr))
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
        if on_epoch is not None:
            on_epoch(epoch)


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Predicted classes (N,) in eval mode, in batches so large test sets fit in memory."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[s:s + batch_size]).argmax(1) for s in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` classified as ``y`` (eval mode)."""
    return float((predict(model, x) == y).float().mean())


def run_demo(seed: int = 0, progress: bool = True) -> list[dict[str, object]]:
    """Train, compare, print the table; returns its rows."""
    from tqdm import tqdm

    torch.set_num_threads(max(1, torch.get_num_threads()))
    probe = load_probe("digits")
    assert probe.labels is not None
    data = split(np.asarray(probe.data), probe.labels, 0.25, seed)
    steps = tqdm(total=len(MLP_SHAPES) * 2 + 1, desc="demo", disable=None if progress else True, leave=False)
    torch.manual_seed(seed)
    cnn = CNN()
    cnn_acc = train(cnn, data, epochs=30, optimiser="adam", lr=0.002, seed=seed)
    steps.update()
    test_probe = data.x_test.numpy()
    rows: list[dict[str, object]] = []
    for name, hidden in MLP_SHAPES.items():
        steps.set_postfix_str(name)
        torch.manual_seed(seed)
        net = mlp(hidden)
        acc = train(net, data, epochs=200, optimiser="sgd", lr=0.1, seed=seed)
        steps.update()
        result = compare(net, cnn, test_probe, neurons="position", layers_a="kind:relu",
                         layers_b="block1,block2", depth_penalty="paper")
        steps.update()
        rows.append({"model": name, "hidden": hidden, "accuracy": acc,
                     "score_to_cnn": result.score.a_to_b, "symmetric": result.score.symmetric,
                     "dead": sum(lr.dead for lr in result.layers_a)})
    steps.close()
    print(f"neurocorr demo: {len(data.x_train)} train / {len(test_probe)} test real 8x8 digits "
          "(scikit-learn); probe = the test split; CNN conv blocks in position view; paper depth penalty")
    print(f"{'model':<6} {'hidden':<22} {'test acc':>8} {'score->CNN':>11} {'symmetric':>10} {'dead':>5}")
    for row in rows:
        print(f"{row['model']!s:<6} {row['hidden']!s:<22} {row['accuracy']:>8.4f} "
              f"{row['score_to_cnn']:>11.4f} {row['symmetric']:>10.4f} {row['dead']!s:>5}")
    print(f"{'CNN':<6} {'2 conv blocks':<22} {cnn_acc:>8.4f}")
    return rows
