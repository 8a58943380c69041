"""Tiny GPT-2-style language models trained offline, for the universal-neurons experiment and tests.

The corpus is the docstrings of Python's own standard library (:func:`stdlib_docstrings`): English
technical prose present wherever Python is installed, so the experiment needs no download and no
Debian package (docs/transformers.md says why this one). A byte-level BPE tokenizer is trained on it
with ``tokenizers``; the models are ``transformers.GPT2LMHeadModel`` built from a ``GPT2Config``.
"""

from __future__ import annotations

import ast
import sysconfig
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurocorr_core import NeurocorrError
from neurocorr_core.probe import Probe

from .probe import token_probe
from .provider import import_transformers

EOS = "<|endoftext|>"
PAD = "<pad>"


@dataclass(frozen=True)
class LMSize:
    """A tiny GPT-2: ``layers`` blocks of ``width`` (MLP: 4 x width neurons), ``context`` tokens."""

    layers: int = 2
    width: int = 64
    heads: int = 4
    context: int = 64
    vocab: int = 1024


def stdlib_docstrings(max_chars: int | None = None, root: str | Path | None = None) -> list[str]:
    """The docstrings (module, class, function) of the Python standard library's ``.py`` files, in
    sorted path order, tests and site-packages left out; at most ``max_chars`` characters in all."""
    base = Path(root or sysconfig.get_paths()["stdlib"])
    texts: list[str] = []
    total = 0
    for path in sorted(base.rglob("*.py")):
        if {"test", "tests", "site-packages", "idle_test"} & set(path.relative_to(base).parts):
            continue
        for text in _docstrings(path):
            texts.append(text)
            total += len(text)
            if max_chars is not None and total >= max_chars:
                return texts
    if not texts:
        raise NeurocorrError(f"no docstrings found under {base}: this Python has no standard-library sources "
                             "(a -OO or stripped install?); give another corpus as a list of texts")
    return texts


def _docstrings(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc and len(doc) >= 40:  # one-liners like "Return x." teach little
                yield doc


def held_out(text: str, every: int = 10) -> bool:
    """Whether a text belongs to the probe (about 1 in ``every``), by a stable hash of its content."""
    return zlib.crc32(text.encode("utf-8")) % every == 0


def train_tokenizer(texts: Sequence[str], vocab: int) -> Any:
    """A byte-level BPE tokenizer of ``vocab`` tokens trained on ``texts`` (deterministic), as a
    ``PreTrainedTokenizerFast`` with ``<|endoftext|>`` and ``<pad>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    t = import_transformers()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=[EOS, PAD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return t.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD)


def token_stream(tokenizer: Any, texts: Sequence[str]) -> np.ndarray:
    """Every text's token ids, each followed by ``<|endoftext|>``, as one int64 array."""
    eos = tokenizer.convert_tokens_to_ids(EOS)
    rows = tokenizer(list(texts))["input_ids"]
    return np.concatenate([np.asarray([*row, eos], np.int64) for row in rows])


def sequence_probe(tokenizer: Any, texts: Sequence[str], context: int, name: str = "probe") -> Probe:
    """A padded token probe: each text one sequence (cut to ``context`` tokens), its mask marking
    the real tokens, so the token view sees every real token once and no padding."""
    rows = [row[:context] for row in tokenizer(list(texts))["input_ids"] if row]
    width = max(len(r) for r in rows)
    ids, mask = np.zeros((len(rows), width), np.int64), np.zeros((len(rows), width), np.int64)
    for i, row in enumerate(rows):
        ids[i, :len(row)], mask[i, :len(row)] = row, 1
    return token_probe(ids, mask, name=name)


def build_lm(size: LMSize, seed: int, vocab: int | None = None) -> Any:
    """A ``GPT2LMHeadModel`` with seeded random weights (dropout off: tiny models, short runs)."""
    import torch

    t = import_transformers()
    torch.manual_seed(seed)
    config = t.GPT2Config(n_layer=size.layers, n_embd=size.width, n_head=size.heads, n_positions=size.context,
                          vocab_size=vocab or size.vocab, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                          bos_token_id=0, eos_token_id=0)
    return t.GPT2LMHeadModel(config)


def train_lm(model: Any, stream: np.ndarray, *, steps: int, seed: int, batch: int = 16, lr: float = 3e-3) -> float:
    """Train ``model`` in place on random windows of ``stream`` (next-token loss, AdamW, linear warm-up
    then cosine decay); the window order is drawn from ``seed``. Returns the mean loss of the last
    10% of steps."""
    import torch

    context = model.config.n_positions
    if len(stream) <= context + 1:
        raise NeurocorrError(f"the training stream holds {len(stream)} tokens, fewer than one window of "
                             f"{context + 1}: give a larger corpus")
    rng = np.random.default_rng(seed)
    data = torch.from_numpy(stream)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(s, steps) / steps)))
    model.train()
    tail: list[float] = []
    for step in range(steps):
        starts = torch.from_numpy(rng.integers(0, len(stream) - context - 1, batch))
        x = torch.stack([data[s:s + context] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step >= steps - max(1, steps // 10):
            tail.append(float(loss.detach()))
    model.eval()
    return float(np.mean(tail))


def eval_loss(model: Any, probe: Probe) -> float:
    """Mean next-token loss over the probe's real tokens."""
    import torch

    data = probe.data
    ids, mask = torch.from_numpy(data[:, 0].astype(np.int64)), torch.from_numpy(data[:, 1].astype(np.int64))
    labels = ids.masked_fill(mask == 0, -100)
    with torch.no_grad():
        return float(model(input_ids=ids, attention_mask=mask, labels=labels).loss)
