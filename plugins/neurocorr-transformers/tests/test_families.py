"""Uniform layer names beyond GPT-2 and BERT: a ViT (images in, patch tokens out) and a LLaMA-style
decoder (gated SiLU MLP, rotary positions, RMSNorm), each built from a tiny config with seeded random
weights. ``kind:activation`` and ``block*.mlp.act`` select the MLP nonlinearity's outputs in both,
and those outputs equal the nonlinearity computed by hand from the MLP's first projection."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tiny
from neurocorr_core import NeurocorrError, compare
from neurocorr_core.probe_sources import load_probe
from neurocorr_core.selection import select_layers
from neurocorr_transformers import HFModel, HFProvider
from neurocorr_transformers.provider import import_transformers

NAMES = ["embed"] + [f"block{i}.{part}" for i in range(3) for part in ("attn", "mlp.act", "resid")]


def vit(seed: int = 0) -> Any:
    import torch

    t = import_transformers()
    torch.manual_seed(seed)
    config = t.ViTConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                         image_size=8, patch_size=4, num_channels=3)
    return t.ViTModel(config).eval()


def llama(seed: int = 0) -> Any:
    import torch

    t = import_transformers()
    torch.manual_seed(seed)
    config = t.LlamaConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=1,
                           intermediate_size=48, vocab_size=tiny.VOCAB, max_position_embeddings=64)
    return t.LlamaModel(config).eval()


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, 8, 8)).astype(np.float32)


def _first_mlp(model: Any) -> Any:
    """The MLP's first projection of block 0, found by its own attribute names (the reference side)."""
    mlp = model.layers[0].mlp
    return mlp.fc1 if hasattr(mlp, "fc1") else mlp.gate_proj


@pytest.mark.parametrize("family", ["vit", "llama"])
def test_layer_names_and_selection(family: str) -> None:
    model = vit() if family == "vit" else llama()
    sample = images(2) if family == "vit" else tiny.padded_probe(2, 6).data
    layers = HFProvider(HFModel(model)).layers(sample)
    assert [layer.name for layer in layers] == NAMES
    chosen = [layer.name for layer in select_layers(layers, "kind:activation", family)]
    assert chosen == [layer.name for layer in select_layers(layers, "block*.mlp.act", family)]
    assert chosen == ["block0.mlp.act", "block1.mlp.act", "block2.mlp.act"]
    tokens = 1 + (8 // 4) ** 2 if family == "vit" else 6  # ViT: CLS + 4 patches
    assert layers[2].shape == (tokens, 64 if family == "vit" else 48)  # the MLP's hidden width
    assert layers[2].op == ("GELUActivation" if family == "vit" else "SiLUActivation")
    assert all(layers[i].shape == (tokens, 32) for i in (0, 1, 3))


@pytest.mark.parametrize("family", ["vit", "llama"])
def test_mlp_act_is_the_nonlinearity_by_hand(family: str) -> None:
    """ViT: GELU (exact erf form) of fc1; LLaMA: SiLU of gate_proj, before the product with up_proj."""
    import torch

    model = vit(1) if family == "vit" else llama(1)
    batch = images(3, seed=1) if family == "vit" else tiny.padded_probe(3, 7, seed=1).data
    pre: list[Any] = []
    handle = _first_mlp(model).register_forward_hook(lambda _m, _a, out: pre.append(out))
    got = next(HFProvider(HFModel(model)).activations([batch], ["block0.mlp.act", "block0.resid"]))
    handle.remove()
    by_hand = torch.nn.functional.gelu(pre[0]) if family == "vit" else pre[0] * torch.sigmoid(pre[0])
    np.testing.assert_allclose(got["block0.mlp.act"], by_hand.numpy(), atol=1e-6)
    assert got["__mask__"].all() if family == "vit" else not got["__mask__"].all()  # padding only in text


@pytest.mark.parametrize("view", ["token", "mean", "first"])
def test_self_comparison_scores_one(view: str) -> None:
    for model, probe in ((vit(2), images(12, seed=2)), (llama(2), tiny.padded_probe(12, 9, seed=2, shortest=2))):
        result = compare(HFModel(model), HFModel(model), probe, neurons=view, layers_a="kind:activation",
                         layers_b="kind:activation", batch_size=5)
        assert result.score.symmetric == pytest.approx(1.0, abs=1e-6)
    vit_tokens = compare(HFModel(vit(2)), HFModel(vit(3)), images(12, seed=2), neurons="token",
                         layers_a="block*.mlp.act", layers_b="block*.mlp.act")
    assert vit_tokens.samples == 12 * 5 and 0 < vit_tokens.score.symmetric < 1
    assert HFProvider(HFModel(vit(2))).rows(load_probe(images(12, seed=2))) == vit_tokens.samples


def test_vit_refuses_a_token_probe() -> None:
    with pytest.raises(NeurocorrError, match="takes images .*NCHW"):
        HFProvider(HFModel(vit())).layers(tiny.padded_probe(2, 6).data)
