"""Sequence probes as plain numeric arrays, so that sampling, shards and tiles treat them as any probe.

A probe sample is one sequence. Three layouts, told apart by their shape:

- ``(N, T)``: token ids, every position real;
- ``(N, 2, T)``: token ids (row 0) and the attention mask (row 1: 1 real, 0 padding);
- ``(N, 1, L)``: text as Unicode code points, -1 after its end; each model's provider tokenizes
  it with its own tokenizer.

float32 holds every whole number below 2**24 exactly: every token id of real vocabularies and
every Unicode code point (at most 0x10FFFF).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurocorr_core import NeurocorrError
from neurocorr_core.probe import Probe, to_numpy

#: Token ids beyond this are not exact in float32.
MOST_IDS = 2**24


@dataclass(frozen=True)
class Batch:
    """One decoded probe batch: ``texts`` (a text probe) or ``ids`` and ``mask`` (int64 (batch, T))."""

    texts: list[str] | None = None
    ids: np.ndarray | None = None
    mask: np.ndarray | None = None


def text_probe(texts: str | os.PathLike[str] | Sequence[str], name: str | None = None) -> Probe:
    """A probe of texts: a list of strings, or a text file (UTF-8) with one sample per non-empty line."""
    if isinstance(texts, os.PathLike) or (isinstance(texts, str) and os.path.exists(texts)):
        path = Path(texts)
        if path.is_dir():
            raise NeurocorrError(f"text probe {str(path)!r} is a folder; give a text file, one sample per line")
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        texts, name = [line for line in lines if line], name or path.name
    elif isinstance(texts, str):
        raise NeurocorrError(f"text probe {texts[:60]!r} is neither a file nor a list of strings; give a list "
                             "(text_probe(['a sentence', ...])) or the path of a text file, one sample per line")
    items = list(texts)
    if not all(isinstance(t, str) for t in items):
        bad = next(t for t in items if not isinstance(t, str))
        raise NeurocorrError(f"a text probe holds strings; got {type(bad).__name__} {bad!r:.40}")
    if len(items) < 2 or not all(items):
        raise NeurocorrError(f"a text probe needs at least 2 non-empty texts; got {len(items)} "
                             f"({sum(not t for t in items)} empty)")
    width = max(len(t) for t in items)
    data = np.full((len(items), 1, width), -1.0, dtype=np.float32)
    for row, text in zip(data, items, strict=True):
        row[0, :len(text)] = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return Probe(data, name or f"{len(items)} texts")


def token_probe(ids: Any, attention_mask: Any = None, name: str = "tokens") -> Probe:
    """A probe of token ids (N, T) (numpy, torch, ...), with the attention mask (N, T) when sequences
    are padded (1 real, 0 padding; default: every position is real)."""
    ids = to_numpy(ids)
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise NeurocorrError(f"token ids must be whole numbers of shape (sequences, tokens); got "
                             f"{ids.dtype} {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= MOST_IDS):
        raise NeurocorrError(f"token ids must lie in [0, {MOST_IDS}); got {ids.min()}..{ids.max()}")
    mask = np.ones(ids.shape, np.float32) if attention_mask is None else to_numpy(attention_mask)
    if mask.shape != ids.shape or not np.isin(mask, (0, 1)).all():
        raise NeurocorrError(f"the attention mask must be 0/1 of the ids' shape {ids.shape}; got "
                             f"{mask.dtype} {mask.shape}")
    return Probe(np.stack([ids.astype(np.float32), mask.astype(np.float32)], axis=1), name)


def decode(batch: np.ndarray) -> Batch:
    """A probe batch in one of the three layouts, decoded."""
    batch = np.asarray(batch)
    if batch.ndim == 2:
        return Batch(ids=_ids(batch), mask=np.ones(batch.shape, np.int64))
    if batch.ndim == 3 and batch.shape[1] == 2:
        return Batch(ids=_ids(batch[:, 0]), mask=(batch[:, 1] > 0).astype(np.int64))
    if batch.ndim == 3 and batch.shape[1] == 1:
        points = batch[:, 0].astype(np.int64)
        return Batch(texts=["".join(map(chr, row[row >= 0])) for row in points])
    raise NeurocorrError(f"a probe batch of shape {batch.shape} is no sequence probe; give token ids (N, T), "
                         "token_probe(ids, attention_mask) (N, 2, T) or text_probe(texts) (N, 1, L)")


def _ids(values: np.ndarray) -> np.ndarray:
    ids = values.astype(np.int64)
    if not np.array_equal(ids, values) or (ids < 0).any():
        raise NeurocorrError("token ids must be whole numbers >= 0; this probe holds other values "
                             "(an image or feature probe given to a language model?)")
    return ids
