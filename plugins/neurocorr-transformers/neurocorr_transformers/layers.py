"""Uniform layer names for transformer stacks (GPT-2, BERT, ViT, LLaMA-style), found by structure.

Every family has a stack of identical blocks (the longest ``ModuleList`` of one class), and in each
block an attention submodule (named ``attn``/``attention``/``self_attn``) and a feed-forward
activation module (``act``, ``act_fn``, ``intermediate_act_fn``, ``activation_fn`` or a GELU/SiLU/ReLU
class). The capture points, in forward order:

========================  =====================================================  ==========
name                      what                                                   kind
========================  =====================================================  ==========
``embed``                 the input of the first block (token + position         other
                          embeddings)
``block{i}.attn``         the attention's output projection, before the          dense
                          residual add (GPT-2 ``attn.c_proj``, BERT
                          ``attention.output.dense``, LLaMA ``self_attn.o_proj``)
``block{i}.mlp.act``      the MLP's hidden activations after the nonlinearity    activation
                          (post-GELU: the neurons of Gurnee et al. 2024)
``block{i}.resid``        the block's output: the residual stream after it       other
========================  =====================================================  ==========
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from neurocorr_core import NeurocorrError

_ATTENTION = ("attn", "attention", "self_attn", "self_attention")
_ACT_NAMES = ("act", "act_fn", "intermediate_act_fn", "activation_fn", "activation")
_ACT_CLASSES = ("gelu", "silu", "relu", "swish", "activation", "quickgelu")


@dataclass(frozen=True)
class Point:
    """One capture point: its uniform ``name``, the module whose output it is, its kind and the
    module's class name; ``pre``: the module's first input instead of its output (``embed``)."""

    name: str
    module: Any
    kind: str
    op: str
    pre: bool = False


def capture_points(model: Any, label: str) -> list[Point]:
    """The capture points of ``model`` (a torch module), in forward order within each block."""
    blocks = _blocks(model, label)
    points = [Point("embed", blocks[0], "other", "embeddings", pre=True)]
    for i, block in enumerate(blocks):
        attn, act = _attention_out(block, i, label), _activation(block, i, label)
        points += [Point(f"block{i}.attn", attn, "dense", type(attn).__name__),
                   Point(f"block{i}.mlp.act", act, "activation", type(act).__name__),
                   Point(f"block{i}.resid", block, "other", type(block).__name__)]
    return points


def _blocks(model: Any, label: str) -> list[Any]:
    import torch

    stacks: list[Any] = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m)
              and len({type(c) for c in m}) == 1]
    if not stacks:
        raise NeurocorrError(f"{label} holds no stack of transformer blocks (a ModuleList of identical "
                             "blocks); compare it with the torch provider (provider='torch') instead")
    longest: Any = max(stacks, key=len)  # the first longest: the encoder or decoder stack
    return list(longest)


def _attention_out(block: Any, i: int, label: str) -> Any:
    """The last module with a 2-D weight (Linear, GPT-2's Conv1D) of the block's attention."""
    for name, sub in block.named_modules():
        if name.rsplit(".", 1)[-1] in _ATTENTION:
            linear = [m for m in sub.modules() if getattr(getattr(m, "weight", None), "ndim", 0) == 2]
            if linear:
                return linear[-1]
    raise NeurocorrError(f"block {i} of {label} ({type(block).__name__}) has no attention submodule named "
                         f"{' or '.join(_ATTENTION)} with a projection; this family is not supported yet")


def _activation(block: Any, i: int, label: str) -> Any:
    """The feed-forward nonlinearity: a module outside the attention, by attribute name, then class."""
    named = [(name, m) for name, m in block.named_modules()
             if name and not any(part in _ATTENTION for part in name.split("."))]
    for name, module in named:
        if name.rsplit(".", 1)[-1] in _ACT_NAMES and not list(module.children()):
            return module
    for _, module in named:
        if any(c in type(module).__name__.lower() for c in _ACT_CLASSES) and not list(module.children()):
            return module
    raise NeurocorrError(f"block {i} of {label} ({type(block).__name__}) has no activation module in its MLP "
                         "(act, act_fn, intermediate_act_fn or a GELU/SiLU class); this family is not supported yet")


def hook(point: Point, store: Callable[[str, Any], None]) -> Any:
    """Register a torch hook handing ``point``'s tensor (a tuple output's first element; ``embed``: the
    first block's input) to ``store(name, tensor)``; returns the handle to remove."""
    def keep(value: Any) -> None:
        store(point.name, value[0] if isinstance(value, (tuple, list)) else value)

    if point.pre:
        return point.module.register_forward_pre_hook(
            lambda _m, args, kwargs: keep(args[0] if args else kwargs["hidden_states"]), with_kwargs=True)
    return point.module.register_forward_hook(lambda _m, _args, out: keep(out))
