"""The paper's transfer attack: FGSM from a surrogate CNN, several rounds, surrogate refit.

Each round moves every image by ``eps`` in the direction of the sign of the surrogate's
loss gradient, clips pixels to [0, 1] (there is no projection back to an eps-ball, as in
the paper, so after 10 rounds of 10/255 a pixel may have moved by up to 100/255), then
trains the surrogate further on the adversarial images with their true labels, so the
next round attacks a surrogate that has adapted to the previous one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from neurocorr_torch.demo import fit
from torch import nn


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
         batch_size: int = 512) -> torch.Tensor:
    """One FGSM step: ``clip(x + eps * sign(grad_x CE(model(x), y)), 0, 1)``.

    ``x`` (N, C, H, W) in [0, 1], ``y`` (N,) labels; the gradient is taken in eval mode
    (no dropout), per sample (the loss is summed, so batching does not change the sign).
    """
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].clone().requires_grad_(True)
        loss_fn(model(xb), y[start:start + batch_size]).backward()
        assert xb.grad is not None
        out.append((xb.detach() + eps * xb.grad.sign()).clamp_(0.0, 1.0))
    model.zero_grad(set_to_none=True)
    return torch.cat(out)


def transfer_attack(surrogate: nn.Module, x: torch.Tensor, y: torch.Tensor, *, rounds: int, eps: float,
                    refit_epochs: int, lr: float, batch_size: int = 128, seed: int = 0,
                    on_round: Callable[[int], None] | None = None) -> torch.Tensor:
    """The adversarial set after ``rounds`` FGSM rounds, each followed by ``refit_epochs``
    epochs of Adam (learning rate ``lr``) on that round's adversarial images.

    ``surrogate`` is modified in place (it is refit). Returns images shaped like ``x``.
    """
    x_adv = x.clone()
    for r in range(rounds):
        x_adv = fgsm(surrogate, x_adv, y, eps)
        if refit_epochs:
            fit(surrogate, x_adv, y, epochs=refit_epochs, optimiser="adam", lr=lr,
                batch_size=batch_size, seed=seed + r)
        if on_round is not None:
            on_round(r)
    return x_adv
