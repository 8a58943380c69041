"""A transformer's ONNX export, fed the same sequence probes: :func:`export_onnx` writes one whose
graph outputs carry the uniform layer names, and the ``hf-onnx`` provider (chosen by name:
``provider_b="hf-onnx"``) runs it with the probe's attention mask, so the sequence views drop the
same padded positions as the ``hf`` provider does."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from neurocorr_core import NeurocorrError
from neurocorr_core.views import MASK
from neurocorr_onnx import OnnxProvider

from .layers import capture_points, hook
from .probe import decode

INPUT = "tokens"


class HFOnnxProvider(OnnxProvider):
    """The ``onnx`` provider for a transformer exported by :func:`export_onnx` (one input: the
    probe batch (batch, 2, tokens) of token ids and mask), adding the mask to every batch's outputs."""

    name = "hf-onnx"
    channel_means = False
    handles = "ONNX exports of transformers written by neurocorr_transformers.export_onnx (chosen by name)"

    @classmethod
    def accepts(cls, model: object) -> bool:
        return False  # an .onnx file is the onnx provider's; this one is asked for by name

    def activations(self, batches: Iterable[np.ndarray], layers: Sequence[str], *,
                    channel_means: bool = False) -> Iterator[dict[str, np.ndarray]]:
        seen: list[np.ndarray] = []

        def fed() -> Iterator[np.ndarray]:  # the base class takes one batch per output, in order
            for batch in batches:
                seen.append(batch)
                yield batch

        for out in super().activations(fed(), layers):
            mask = decode(seen.pop(0)).mask
            if mask is None:
                raise NeurocorrError(f"{self.label} is an ONNX export: it takes token ids, not text; give "
                                     "token_probe(ids, attention_mask) (tokenize the texts first)")
            yield {**out, MASK: mask.astype(bool)}


def export_onnx(model: Any, path: str | os.PathLike[str], *, tokens: int = 8, opset: int = 17) -> None:
    """Write ``model`` (a transformers model) to ``path`` as ONNX with one input, ``tokens`` (batch, 2,
    tokens) float32 (token ids, attention mask: a token_probe's layout), and one graph output per
    capture point, named as the ``hf`` provider names it (``block0.mlp.act``). Uses torch's
    TorchScript-based exporter (``dynamo=False``: seconds, no onnxscript needed)."""
    import torch

    wrapper = _exported(model.eval())
    names = [p.name for p in wrapper.points]
    example = torch.ones(2, 2, tokens)
    axes = {INPUT: {0: "batch", 2: "tokens"}, **{n: {0: "batch", 1: "tokens"} for n in names}}
    torch.onnx.export(wrapper, (example,), os.fspath(path), input_names=[INPUT], output_names=names,
                      dynamic_axes=axes, opset_version=opset, dynamo=False)


def _exported(model: Any) -> Any:
    """``model`` as a module taking the probe layout and returning every capture point's output."""
    import torch

    class Exported(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.points = model, capture_points(model, type(model).__name__)

        def forward(self, x: Any) -> tuple[Any, ...]:
            outs: dict[str, Any] = {}
            handles = [hook(p, outs.__setitem__) for p in self.points]
            try:
                self.model(input_ids=x[:, 0].long(), attention_mask=x[:, 1].long())
            finally:
                for handle in handles:
                    handle.remove()
            return tuple(outs[p.name] for p in self.points)

    return Exported()
