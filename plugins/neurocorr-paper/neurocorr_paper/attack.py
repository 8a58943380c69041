"""The paper's transfer attack: FGSM from a surrogate CNN, several rounds, surrogate refit.

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

import torch
from torch import nn

from neurocorr_core import NeurocorrError
from neurocorr_torch.demo import fit

REFITS = ("fresh", "continue", "none")


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
