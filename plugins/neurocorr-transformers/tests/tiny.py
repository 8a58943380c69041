"""Tiny GPT-2 and BERT models built from configs with seeded random weights (no downloads), and
padded token probes with random lengths."""

from __future__ import annotations

from typing import Any

import numpy as np

from neurocorr_transformers import token_probe
from neurocorr_transformers.provider import import_transformers

VOCAB = 120


def gpt2(seed: int = 0, layers: int = 2, width: int = 32) -> Any:
    import torch

    t = import_transformers()
    torch.manual_seed(seed)
    config = t.GPT2Config(n_layer=layers, n_embd=width, n_head=2, vocab_size=VOCAB, n_positions=64,
                          bos_token_id=0, eos_token_id=0)
    return t.GPT2Model(config).eval()


def bert(seed: int = 0, layers: int = 2, width: int = 32) -> Any:
    import torch

    t = import_transformers()
    torch.manual_seed(seed)
    config = t.BertConfig(num_hidden_layers=layers, hidden_size=width, num_attention_heads=2,
                          intermediate_size=2 * width, vocab_size=VOCAB, max_position_embeddings=64)
    return t.BertModel(config).eval()


def padded(n: int, width: int, seed: int = 0, shortest: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (n, width) and a right-padded mask with lengths drawn from shortest..width."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, (n, width))
    lengths = rng.integers(shortest, width + 1, n)
    return ids, (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)


def padded_probe(n: int, width: int, seed: int = 0, shortest: int = 1) -> Any:
    return token_probe(*padded(n, width, seed, shortest))
