"""The paper's transfer attack: FGSM from a surrogate CNN, several rounds, surrogate refit.

``paper`` (:func:`paper_attack`, the default of ``reproduce``) is the official robustness
notebook's loop, read line by line: one surrogate CNN (seeded, never trained on the training
set) is given to skorch as a module *instance*, so every ``fit`` call continues training it
(skorch re-creates only the optimizer). Each of the 10 rounds first fits it for 3 epochs (Adam,
lr 0.002, batch 128, no shuffling: skorch's defaults) on the images being attacked (round 1:
the clean test images) with their true labels, less skorch's default validation hold-out (the
first fold of a 5-fold stratified split, 20%); then takes one FGSM step on all of them in
batches of 500, in eval mode, with the gradient of ``nn.CrossEntropyLoss`` applied to the
module's *softmax output* (the notebook's module ends in a softmax: a double softmax). The
training loss is skorch's: NLL of log(softmax + float eps).

The named variants below (``fresh``, ``continue``, ``none``) are neurocorr's earlier readings,
kept for comparison; each starts from a surrogate trained on the training set.

Each round moves every image by ``eps`` in the direction of the sign of the surrogate's
loss gradient and clips pixels to [0, 1] (there is no projection back to an eps-ball, as in
the paper, so after 10 rounds of 10/255 a pixel may have moved by up to 100/255). Then the
surrogate is refit on that round's adversarial images with their true labels, so the next
round attacks a surrogate that has seen the previous one's images:

- ``fresh`` (default): a newly initialised surrogate trained from scratch on the adversarial
  set, which is what a skorch ``fit`` call (the paper's code uses skorch) does;
- ``continue``: the same surrogate trained further (a ``partial_fit``);
- ``none``: no refit, plain iterated FGSM from the first surrogate.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from neurocorr_core import NeurocorrError
from neurocorr_torch.demo import fit

REFITS = ("fresh", "continue", "none")
#: ``--attack``: the notebook's loop, or one of the earlier readings (the refit modes).
ATTACKS = ("paper", *REFITS)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
         batch_size: int = 512, double_softmax: bool = False) -> torch.Tensor:
    """One FGSM step: ``clip(x + eps * sign(grad_x CE(model(x), y)), 0, 1)``.

    ``x`` (N, C, H, W) in [0, 1], ``y`` (N,) labels; the gradient is taken in eval mode
    (no dropout), per sample (the loss is summed, so batching does not change the sign).
    ``double_softmax``: CE of ``softmax(model(x))`` (the official notebook feeds its
    softmax output to ``nn.CrossEntropyLoss``, which applies a second softmax).
    """
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].clone().requires_grad_(True)
        logits = model(xb)
        loss_fn(torch.softmax(logits, dim=-1) if double_softmax else logits, y[start:start + batch_size]).backward()
        assert xb.grad is not None
        out.append((xb.detach() + eps * xb.grad.sign()).clamp_(0.0, 1.0))
    model.zero_grad(set_to_none=True)
    return torch.cat(out)


def transfer_attack(surrogate: nn.Module, x: torch.Tensor, y: torch.Tensor, *, rounds: int, eps: float,
                    refit: str = "fresh", refit_epochs: int = 1, lr: float = 0.002, batch_size: int = 128,
                    seed: int = 0, build: Callable[[], nn.Module] | None = None,
                    on_round: Callable[[int], None] | None = None) -> torch.Tensor:
    """The adversarial set after ``rounds`` FGSM rounds, each followed by a refit of the
    surrogate (see the module text): ``refit_epochs`` epochs of Adam at learning rate ``lr``
    on that round's adversarial images. ``build()`` makes a new surrogate (``fresh``; seeded
    with ``seed + round``). ``surrogate`` itself is trained further only by ``continue``.
    Returns images shaped like ``x``.
    """
    if refit not in REFITS:
        raise NeurocorrError(f"unknown refit {refit!r}; choose one of {', '.join(REFITS)}")
    if refit == "fresh" and build is None:
        raise NeurocorrError("refit 'fresh' needs build(), a function that makes a new surrogate")
    x_adv, model = x.clone(), surrogate
    for r in range(rounds):
        x_adv = fgsm(model, x_adv, y, eps)
        if refit != "none" and r < rounds - 1:  # the last refit would never be used
            if refit == "fresh":
                assert build is not None
                torch.manual_seed(seed + r)
                model = build()
            fit(model, x_adv, y, epochs=refit_epochs, optimiser="adam", lr=lr, batch_size=batch_size,
                seed=seed + r)
        if on_round is not None:
            on_round(r)
    return x_adv


def skorch_train_indices(y: torch.Tensor) -> np.ndarray:
    """The images skorch's default ``train_split`` (ValidSplit(5), stratified for a classifier)
    trains on: all but the first fold of ``StratifiedKFold(5)`` without shuffling (80%)."""
    from sklearn.model_selection import StratifiedKFold

    labels = y.numpy()
    train, _ = next(iter(StratifiedKFold(5).split(np.zeros(len(labels)), labels)))
    return train


def skorch_fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
               batch_size: int = 128) -> None:
    """skorch's ``NeuralNetClassifier.fit`` of a module instance whose output is a softmax:
    the weights as they are (continued training), a new Adam optimizer, batches in order (no
    shuffling), loss NLL(log(softmax + eps)), on the 80% of skorch's validation split."""
    keep = torch.from_numpy(skorch_train_indices(y))
    x, y = x[keep], y[keep]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    eps = torch.finfo(torch.float32).eps
    model.train()
    for _ in range(epochs):
        for start in range(0, len(x), batch_size):
            opt.zero_grad()
            probs = torch.softmax(model(x[start:start + batch_size]), dim=-1)
            nn.functional.nll_loss(torch.log(probs + eps), y[start:start + batch_size]).backward()
            opt.step()


def paper_attack(x: torch.Tensor, y: torch.Tensor, *, build: Callable[[], nn.Module], rounds: int = 10,
                 eps: float = 10 / 255, epochs: int = 3, lr: float = 0.002, batch_size: int = 128,
                 step: int = 500, seed: int = 0, on_round: Callable[[int], None] | None = None) -> torch.Tensor:
    """The official notebook's attack (see the module text): ``build()`` (seeded with ``seed``)
    makes the one surrogate, which outputs logits; each round fits it further for ``epochs`` on
    the current images, then one double-softmax FGSM step in batches of ``step``."""
    torch.manual_seed(seed)
    model = build()
    x_adv = x.clone()
    for r in range(rounds):
        skorch_fit(model, x_adv, y, epochs=epochs, lr=lr, batch_size=batch_size)
        x_adv = fgsm(model, x_adv, y, eps, batch_size=step, double_softmax=True)
        if on_round is not None:
            on_round(r)
    return x_adv
