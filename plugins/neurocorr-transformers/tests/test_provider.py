"""The hf provider: uniform layer names, text probes with each side's own tokenizer, models from
folders and from the local cache only, and its errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tiny
from neurocorr_core import NeurocorrError, compare
from neurocorr_core.selection import select_layers
from neurocorr_transformers import HFModel, HFProvider, text_probe, token_probe
from neurocorr_transformers.provider import import_transformers

TEXTS = ["the cat sat on the mat", "a dog ran in the park today", "the sun is warm", "we read a long book",
         "birds sing in the morning light", "the river runs to the sea", "cold wind and grey sky",
         "she wrote the letter twice"]


def _tokenizer(kind: str) -> Any:
    """A fast tokenizer trained here on TEXTS: words, or BPE pieces (other lengths)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    t = import_transformers()
    if kind == "words":
        tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        trainer: Any = trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]"])
    else:
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        trainer = trainers.BpeTrainer(vocab_size=60, special_tokens=["[PAD]", "[UNK]"])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(TEXTS, trainer)
    return t.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_uniform_layer_names(family: str) -> None:
    provider = HFProvider(HFModel(getattr(tiny, family)(0, layers=3)))
    layers = provider.layers(tiny.padded_probe(2, 6).data)
    assert [layer.name for layer in layers] == ["embed"] + [f"block{i}.{part}" for i in range(3)
                                                          for part in ("attn", "mlp.act", "resid")]
    assert [layer.depth for layer in layers] == list(range(10))
    chosen = [layer.name for layer in select_layers(layers, "kind:activation", family)]
    assert chosen == [layer.name for layer in select_layers(layers, "block*.mlp.act", family)]
    assert chosen == ["block0.mlp.act", "block1.mlp.act", "block2.mlp.act"]
    assert layers[2].shape == (6, 128 if family == "gpt2" else 64)  # (tokens, hidden): GPT-2 4x, BERT 2x


def test_mlp_act_is_post_gelu() -> None:
    """block0.mlp.act equals GELU of the MLP's first projection, computed by hand."""
    import torch

    model = tiny.gpt2(1)
    ids, mask = tiny.padded(3, 7, seed=1)
    pre: list[Any] = []
    handle = model.h[0].mlp.c_fc.register_forward_hook(lambda _m, _a, out: pre.append(out))
    got = next(HFProvider(HFModel(model)).activations([token_probe(ids, mask).data], ["block0.mlp.act"]))
    handle.remove()
    gelu = torch.nn.functional.gelu(pre[0], approximate="tanh").numpy()  # GPT-2's gelu_new
    np.testing.assert_allclose(got["block0.mlp.act"], gelu, atol=1e-6)


def test_text_probe_from_folder_with_own_tokenizer(tmp_path: Path) -> None:
    model, tokenizer = tiny.bert(2), _tokenizer("words")
    model.save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS) + "\n\n", encoding="utf-8")
    probe = text_probe(tmp_path / "texts.txt")
    assert len(probe) == len(TEXTS)
    result = compare(str(tmp_path / "bert"), str(tmp_path / "bert"), probe, neurons="token", layers_a="*",
                     layers_b="*", batch_size=3)
    assert result.score.symmetric == pytest.approx(1.0, abs=1e-6)
    _, mask = HFProvider(str(tmp_path / "bert")).tokens(probe.data[:2])
    assert mask.sum(axis=1).tolist() == [len(TEXTS[0].split()), len(TEXTS[1].split())]


def test_different_tokenizations_compare_per_text_not_per_token() -> None:
    """Two tokenizers cut the texts into different numbers of tokens: the token view is refused (the
    rows are not the same samples: compare says so and what to use instead); unit='word' compares
    at the words both share, and mean/first one row per text."""
    probe = text_probe(TEXTS)
    a, b = HFModel(tiny.gpt2(3), _tokenizer("words")), HFModel(tiny.gpt2(3), _tokenizer("bpe"))
    with pytest.raises(NeurocorrError, match="tokenizers split the text differently.*unit=word"):
        compare(a, b, probe, neurons="token", layers_a="*", layers_b="*")
    words = {"unit": "word"}
    same = compare(a, a, probe, neurons="token", layers_a="*", layers_b="*", options_a=words, options_b=words)
    assert same.score.symmetric == pytest.approx(1.0, abs=1e-6)
    result = compare(a, b, probe, neurons="token", layers_a="*", layers_b="*", options_a=words, options_b=words)
    assert 0 < result.score.symmetric < 1
    assert 0 < compare(a, b, probe, neurons="mean", layers_a="*", layers_b="*").score.symmetric < 1


def test_word_unit_is_the_mean_of_each_words_tokens() -> None:
    model = HFModel(tiny.bert(1), _tokenizer("bpe"))
    probe = text_probe(["the cat sat", "birds sing in the morning light"])
    by_token = HFProvider(model)
    tokens = next(by_token.activations([probe.data], ["embed"]))["embed"]
    words = next(HFProvider(model, unit="word").activations([probe.data], ["embed"]))
    assert words["__mask__"].sum(axis=1).tolist() == [3, 6]
    pieces = by_token.tokenizer(["birds sing in the morning light"], return_offsets_mapping=True)["offset_mapping"][0]
    light = [t for t, (s, e) in enumerate(pieces) if e > s and s >= len("birds sing in the morning ")]
    np.testing.assert_allclose(words["embed"][1, 5], tokens[1, light].mean(axis=0), atol=1e-6)


def test_errors() -> None:
    model = HFModel(tiny.gpt2(0))
    with pytest.raises(NeurocorrError, match="no tokenizer for this text probe"):
        compare(model, model, text_probe(TEXTS), neurons="token")
    with pytest.raises(NeurocorrError, match="vocabulary of 120 tokens but the probe holds token id 500"):
        compare(model, model, token_probe(np.full((4, 3), 500)), neurons="token")
    with pytest.raises(NeurocorrError, match="at most 64 tokens per sequence; the probe holds 70"):
        compare(model, model, token_probe(np.ones((4, 70), np.int64)), neurons="token")
    with pytest.raises(NeurocorrError, match="would count padded tokens: use --neurons token, mean or first"):
        compare(model, model, tiny.padded_probe(4, 5))
    with pytest.raises(NeurocorrError, match="no sequence probe"):
        compare(model, model, np.zeros((4, 3, 2, 2), np.float32), neurons="token")
    with pytest.raises(NeurocorrError, match="several providers accept"):
        compare(tiny.gpt2(0), tiny.gpt2(0), tiny.padded_probe(4, 5), neurons="token")
    with pytest.raises(NeurocorrError, match="attention mask must be 0/1"):
        token_probe(np.ones((2, 3), np.int64), np.full((2, 3), 2))


def test_hf_name_missing_is_one_error_naming_the_cache() -> None:
    with pytest.raises(NeurocorrError, match="no model found in the local Hugging Face cache .*never downloads") as err:
        compare("hf:nobody/no-such-model", "hf:nobody/no-such-model", tiny.padded_probe(4, 5), neurons="token")
    assert "\n" not in str(err.value)


def test_hf_name_from_local_cache_offline(tmp_path: Path) -> None:
    """``neurocorr layers hf:NAME`` reads a model from the hub cache layout, with no network."""
    snapshot = tmp_path / "models--local--tiny-gpt2" / "snapshots" / "abc123"
    tiny.gpt2(0).save_pretrained(snapshot)
    (tmp_path / "models--local--tiny-gpt2" / "refs").mkdir()
    (tmp_path / "models--local--tiny-gpt2" / "refs" / "main").write_text("abc123")
    probe = tmp_path / "probe.npy"
    np.save(probe, tiny.padded_probe(4, 5).data)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "neurocorr_core.cli", "layers", "hf:local/tiny-gpt2",
                           "--probe", str(probe)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "block1.mlp.act" in done.stdout and "activation" in done.stdout
