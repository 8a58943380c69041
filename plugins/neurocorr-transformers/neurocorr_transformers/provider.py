"""The ``hf`` activation provider: Hugging Face transformers models, their layers named uniformly.

Each forward pass yields, beside the selected layers' (batch, tokens, features) outputs, the
(batch, tokens) mask of real tokens under :data:`neurocorr_core.views.MASK`: the ``token``,
``mean`` and ``first`` views drop padded positions with it (docs/transformers.md).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurocorr_core import ActivationProvider, LayerInfo, NeurocorrError
from neurocorr_core.models import ModelName
from neurocorr_core.views import MASK

from .layers import capture_points, hook
from .probe import decode

PREFIX = "hf:"
UNITS = ("token", "word")


@dataclass(frozen=True)
class HFModel:
    """A transformers model (a ``PreTrainedModel``, or any torch module taking ``input_ids`` and
    ``attention_mask``) with its tokenizer (an object, a folder, or None for token-id probes)."""

    model: Any
    tokenizer: Any = None


def import_transformers() -> Any:
    """``transformers``, offline: the hub is never asked (HF_HUB_OFFLINE=1), and a torchvision whose
    compiled ops do not load beside this torch (transformers imports it) is loaded without them."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    if "transformers" not in sys.modules:
        from neurocorr_torch.named import import_torchvision

        with contextlib.suppress(ImportError):  # no torchvision: transformers does without it
            import_torchvision()
    import transformers

    return transformers


def is_folder(model: object) -> bool:
    """A local folder holding a transformers model (its config.json)."""
    return isinstance(model, (str, os.PathLike)) and (Path(model) / "config.json").is_file()


class HFProvider(ActivationProvider):
    """Options: ``tokenizer`` (an object or a folder; default: the model's own, for text probes),
    ``max_length`` (tokens kept per text; default: the model's maximum positions), ``device``,
    ``unit``: ``token`` (default) or ``word``: for text probes, each whitespace-separated word of the
    text becomes one position, the mean of its tokens, so models with other tokenizers share rows."""

    name = "hf"
    handles = ("Hugging Face transformers models: hf:NAME (local cache only), a folder with config.json, "
               "neurocorr_transformers.HFModel(model, tokenizer), or a PreTrainedModel with provider='hf'")

    @classmethod
    def accepts(cls, model: object) -> bool:
        if isinstance(model, (HFModel, ModelName)) or (isinstance(model, str) and model.startswith(PREFIX)):
            return str(model).startswith(PREFIX) if not isinstance(model, HFModel) else True
        if isinstance(model, (str, os.PathLike)):
            return is_folder(model)
        if "transformers" not in sys.modules:
            return False
        return isinstance(model, sys.modules["transformers"].PreTrainedModel)

    def __init__(self, model: object, *, tokenizer: Any = None, max_length: int | None = None,
                 device: str = "cpu", unit: str = "token", **options: Any) -> None:
        super().__init__(model, **options)
        if unit not in UNITS:
            raise NeurocorrError(f"unknown unit {unit!r}; choose token (the model's own tokens) or word "
                                 "(whitespace-separated words of a text probe, shared by every tokenizer)")
        self.unit = unit
        from neurocorr_torch.provider import check_device

        transformers = import_transformers()
        self.device = check_device(device)
        self.label = str(model) if isinstance(model, (str, os.PathLike, ModelName)) else type(model).__name__
        module, own = _load(model, self.label, transformers)
        self.module = module.to(self.device).eval()
        self.tokenizer = _tokenizer(tokenizer, transformers) if tokenizer is not None else own
        self.max_positions = _max_positions(self.module)
        self.max_length = max_length or self.max_positions
        self.points = capture_points(self.module, self.label)

    # -- the ActivationProvider contract ---------------------------------------------------
    def layers(self, sample: np.ndarray) -> list[LayerInfo]:
        outputs = self._run(sample, None)
        found = {p.name: p for p in self.points}
        return [LayerInfo(name, tuple(out.shape[1:]), depth, found[name].kind, found[name].op)
                for depth, (name, out) in enumerate(outputs.items()) if name != MASK]

    def activations(self, batches: Iterable[np.ndarray], layers: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
        wanted = set(layers)
        for batch in batches:
            yield self._run(batch, wanted)

    def rows(self, probe: Any, neurons: str = "token", batch_size: int = 256) -> int | None:
        """The rows the ``token`` view makes of ``probe`` (a :class:`~neurocorr_core.probe.Probe`), with no
        forward pass: its real tokens as this model tokenizes them (``unit='word'``: the words holding a
        token; ViT: images x (patches + 1)). For planning memory before the comparison runs; None for the
        other views (one row a sequence)."""
        if neurons != "token":
            return None
        config: Any = getattr(self.module, "config", None)
        if getattr(self.module, "main_input_name", None) == "pixel_values":
            return len(probe) * ((config.image_size // config.patch_size) ** 2 + 1)
        total = 0
        for batch in probe.batches(batch_size):
            _, mask, words = self._tokens(batch)
            total += int(mask.sum()) if words is None else int(words.any(axis=2).sum())
        return total

    # -- running -----------------------------------------------------------------------------
    def tokens(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A probe batch as token ids and mask, int64 (batch, tokens): texts tokenized with this
        model's tokenizer (padded on the right)."""
        ids, mask, _ = self._tokens(batch)
        return ids, mask

    def _tokens(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Token ids and mask, and for ``unit='word'`` the (batch, words, tokens) averaging weights."""
        decoded = decode(batch)
        if decoded.texts is None:
            assert decoded.ids is not None and decoded.mask is not None
            if self.unit == "word":
                raise NeurocorrError("unit='word' needs a text probe (text_probe(texts)): token ids carry no words")
            return decoded.ids, decoded.mask, None
        if self.tokenizer is None:
            raise NeurocorrError(f"{self.label} has no tokenizer for this text probe: pass tokenizer= (an "
                                 "object or a folder) in its options, or a token_probe(ids, mask)")
        word = self.unit == "word"
        coded = self.tokenizer(decoded.texts, truncation=True, max_length=self.max_length,
                               return_offsets_mapping=word)
        rows = coded["input_ids"]
        width = max(len(r) for r in rows)
        ids, mask = np.zeros((len(rows), width), np.int64), np.zeros((len(rows), width), np.int64)
        for i, row in enumerate(rows):
            ids[i, :len(row)], mask[i, :len(row)] = row, 1
        return ids, mask, (_word_weights(decoded.texts, coded["offset_mapping"], width) if word else None)

    def _run(self, batch: np.ndarray, wanted: set[str] | None) -> dict[str, np.ndarray]:
        import torch

        words = None
        if getattr(self.module, "main_input_name", None) == "pixel_values":  # ViT: NCHW images, no padding
            inputs = {"pixel_values": torch.from_numpy(self._pixels(batch)).to(self.device)}
        else:
            ids, mask, words = self._tokens(batch)
            self._check(ids)
            inputs = {"input_ids": torch.from_numpy(ids).to(self.device),
                      "attention_mask": torch.from_numpy(mask).to(self.device)}
        outputs: dict[str, np.ndarray] = {}
        def store(name: str, tensor: Any) -> None:
            outputs[name] = tensor.detach().float().cpu().numpy()

        handles = [hook(p, store) for p in self.points if wanted is None or p.name in wanted]
        try:
            with torch.no_grad():
                self.module(**inputs)
        finally:
            for handle in handles:
                handle.remove()
        if words is not None:  # each word: the mean of its tokens; a word is real if it has one
            outputs = {name: np.einsum("bwt,btf->bwf", words, out) for name, out in outputs.items()}
            mask = np.asarray(words.any(axis=2))
        if "pixel_values" in inputs:  # every patch token (and CLS) is real
            mask = np.ones(next(iter(outputs.values())).shape[:2], bool) if outputs else np.ones((len(batch), 0))
        outputs[MASK] = mask.astype(bool)
        return outputs

    def _pixels(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, np.float32)
        if batch.ndim != 4:
            raise NeurocorrError(f"{self.label} takes images (pixel_values); a probe batch of shape {batch.shape} is "
                                 "none: give NCHW images (N, channels, height, width) of the model's image size")
        return batch

    def _check(self, ids: np.ndarray) -> None:
        vocab = getattr(getattr(self.module, "config", None), "vocab_size", None)
        if vocab is not None and ids.size and ids.max() >= vocab:
            raise NeurocorrError(f"{self.label} has a vocabulary of {vocab} tokens but the probe holds token id "
                                 f"{int(ids.max())}: tokenize the probe with this model's tokenizer")
        if self.max_positions is not None and ids.shape[1] > self.max_positions:
            raise NeurocorrError(f"{self.label} takes at most {self.max_positions} tokens per sequence; the probe "
                                 f"holds {ids.shape[1]}: cut the sequences (or set max_length for texts)")


def _word_weights(texts: list[str], offsets: list[Any], width: int) -> np.ndarray:
    """(batch, words, tokens) float32: 1/k for the k tokens that start inside a word (a run of
    non-space characters), 0 elsewhere (special tokens have empty offsets and join no word)."""
    spans = [[m.span() for m in re.finditer(r"\S+", text)] for text in texts]
    weights = np.zeros((len(texts), max(len(s) for s in spans), width), np.float32)
    for b, (words, tokens) in enumerate(zip(spans, offsets, strict=True)):
        starts = np.array([start for start, _ in words])
        for t, (start, end) in enumerate(tokens):
            if end > start:
                w = int(np.searchsorted(starts, start, side="right")) - 1
                if w >= 0 and start < words[w][1]:
                    weights[b, w, t] = 1.0
    counts = weights.sum(axis=2, keepdims=True)
    return np.divide(weights, counts, out=np.zeros_like(weights), where=counts > 0)


def _load(model: object, label: str, transformers: Any) -> tuple[Any, Any]:
    """The torch module and its own tokenizer (None when it has none)."""
    if isinstance(model, HFModel):
        return model.model, (_tokenizer(model.tokenizer, transformers) if model.tokenizer is not None else None)
    if not isinstance(model, (str, os.PathLike, ModelName)):
        return model, None
    text = str(model)
    where = text[len(PREFIX):] if text.startswith(PREFIX) else text
    try:
        module = transformers.AutoModel.from_pretrained(where, local_files_only=True)
    except (OSError, ValueError) as exc:
        from huggingface_hub.constants import HF_HUB_CACHE

        looked = f"the local Hugging Face cache {HF_HUB_CACHE}" if text.startswith(PREFIX) else f"folder {where}"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NeurocorrError(f"{label}: no model found in {looked} ({first}); neurocorr never downloads: fetch it "
                             f"once where there is network ('hf download {where}') or give a local folder") from None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(where, local_files_only=True)
    except (OSError, ValueError, TypeError):  # no tokenizer files: token-id probes still work
        tokenizer = None
    return module, tokenizer


def _tokenizer(spec: Any, transformers: Any) -> Any:
    if not isinstance(spec, (str, os.PathLike)):
        return spec
    try:
        return transformers.AutoTokenizer.from_pretrained(os.fspath(spec), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise NeurocorrError(f"no tokenizer found at {os.fspath(spec)!r} ({type(exc).__name__}); give a folder "
                             "holding tokenizer.json (or vocab files), or a tokenizer object") from None


def _max_positions(module: Any) -> int | None:
    config = getattr(module, "config", None)
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    return None
