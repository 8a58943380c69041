"""The rotated-neuron baseline of Gurnee et al. 2024: the same network with its MLP neuron basis
randomly rotated.

:func:`rotate_mlp_neurons` returns a copy of a GPT-2 model whose every ``block*.mlp.act`` outputs
``act @ R.T`` (``R`` a random orthogonal matrix per block, Haar-distributed) and whose MLP output
projection takes ``R @ W`` instead of ``W``: the model computes the same function, but each of its
"neurons" is now a random unit-norm mixture of the original ones. The best correlation of a neuron
of another model with these mixtures is the chance level of "having a partner": a neuron is
universal when its best real partner correlates well above it (docs/transformers.md).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch  # this module is imported only when a baseline is made (never by the plugin's __init__)

from neurocorr_core import NeurocorrError


def random_rotation(n: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal (n, n) matrix: QR of a Gaussian matrix, columns' signs fixed."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))[None, :]


def rotate_mlp_neurons(model: Any, seed: int) -> tuple[Any, list[np.ndarray]]:
    """A rotated copy of a GPT-2 (``GPT2Model``/``GPT2LMHeadModel``) and the rotation of each block.

    Block ``i``'s MLP activation becomes ``a @ R_i.T`` and its ``c_proj`` weight ``R_i @ W``, so the
    logits are unchanged (up to float32 rounding)."""
    clone = copy.deepcopy(model).eval()
    blocks = getattr(getattr(clone, "transformer", clone), "h", None)
    if blocks is None or not all(hasattr(b, "mlp") and hasattr(b.mlp, "c_proj") for b in blocks):
        raise NeurocorrError(f"rotate_mlp_neurons takes a GPT-2 (transformers GPT2Model or GPT2LMHeadModel); "
                             f"got {type(model).__name__}")
    rng = np.random.default_rng(seed)
    rotations = []
    for block in blocks:
        weight = block.mlp.c_proj.weight  # Conv1D: (in = MLP neurons, out = width), y = x @ W + b
        rotation = random_rotation(weight.shape[0], rng)
        with torch.no_grad():
            weight.copy_(torch.from_numpy(rotation @ weight.detach().double().numpy()).to(weight.dtype))
        block.mlp.act = RotatedActivation(block.mlp.act, rotation)
        rotations.append(rotation)
    return clone, rotations


class RotatedActivation(torch.nn.Module):
    """``act(x) @ R.T``: a leaf module (the original activation is held as a plain function, not a
    child), so the hf provider finds it as the block's ``mlp.act``."""

    def __init__(self, act: Any, rotation: np.ndarray) -> None:
        super().__init__()
        self.fn = act.forward if isinstance(act, torch.nn.Module) else act
        self.register_buffer("rotation", torch.from_numpy(rotation.astype(np.float32)))

    def forward(self, x: Any) -> Any:
        return self.fn(x) @ self.rotation.T
