"""Flax nnx twins of a tiny GPT-2 and a tiny BERT (seeded random weights, no downloads) against the torch
models: the same weights, the same hidden states, and every neuron identity-matched under the token view
with heavy padding."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tiny
from neurocorr_core import NeurocorrError, compare
from neurocorr_core.views import MASK
from neurocorr_transformers import HFModel, HFProvider, text_probe, token_probe
from neurocorr_transformers.provider import import_transformers

pytest.importorskip("flax", reason="the Flax twins need flax (pip install neurocorr-transformers[flax])")
pytest.importorskip("neurocorr_jax", reason="the hf-flax provider needs neurocorr-jax "
                    "(pip install neurocorr-transformers[flax])")
from flax import nnx

from neurocorr_transformers.flax_provider import HFFlaxProvider
from neurocorr_transformers.flax_twin import from_torch

FAMILIES = ["gpt2", "bert"]


def build(family: str, seed: int = 5, head: str = "") -> Any:
    """A 2-block, 64-wide model with 4 heads; GPT-2's MLP uses gelu_new (tanh), BERT's exact gelu."""
    import torch

    t = import_transformers()
    torch.manual_seed(seed)
    if family == "gpt2":
        config = t.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=tiny.VOCAB, n_positions=64,
                              bos_token_id=0, eos_token_id=0)
        return (t.GPT2LMHeadModel if head else t.GPT2Model)(config).eval()
    config = t.BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
                          vocab_size=tiny.VOCAB, max_position_embeddings=64)
    return t.BertModel(config).eval()


def heavy(n: int = 120, width: int = 40, seed: int = 7, side: str = "right") -> tuple[np.ndarray, np.ndarray]:
    """Token ids and a mask with 1..8 real tokens of 40 (about 89% padding), padded on the right or the left
    (left padding puts padded keys before real queries: a GPT-2 then needs the mask, not just causality)."""
    ids, _ = tiny.padded(n, width, seed=seed)
    lengths = np.random.default_rng(seed + 1).integers(1, 9, n)
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    return ids, (mask[:, ::-1].copy() if side == "left" else mask)


def run(provider: Any, ids: np.ndarray, mask: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    probe = token_probe(ids, mask)
    return next(iter(provider.activations(probe.batches(len(probe)), names)))


@pytest.mark.parametrize("family", FAMILIES)
def test_weights_equal_after_copy(family: str) -> None:
    model = build(family)
    twin = from_torch(model)
    flax = {".".join(map(str, path[:-1])) + (".bias" if path[-1] == "bias" else ".weight"): np.asarray(v.get_value())
            for path, v in nnx.to_flat_state(nnx.state(twin, nnx.Param))}
    torch_params = {name: p.detach().numpy() for name, p in model.named_parameters()}
    assert sorted(flax) == sorted(torch_params)
    for name, value in torch_params.items():
        # BERT's Linear weights are (out, in), Flax kernels (in, out); GPT-2's Conv1D and every embedding agree
        linear = family == "bert" and value.ndim == 2 and "embeddings" not in name
        np.testing.assert_array_equal(flax[name], value.T if linear else value, err_msg=name)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("family", FAMILIES)
def test_hidden_states_equal_on_a_padded_batch(family: str, side: str) -> None:
    import torch

    model = build(family)
    twin = from_torch(model)
    ids, mask = tiny.padded(16, 24, seed=3)
    mask = mask[:, ::-1].copy() if side == "left" else mask
    with torch.no_grad():
        expected = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
    got = np.asarray(twin(ids, mask))
    real = mask.astype(bool)
    np.testing.assert_allclose(got[real], expected.numpy()[real], atol=1e-5, rtol=0)
    # every capture point, from the two providers: the same layers, shapes, kinds, values and mask
    hf, fx = HFProvider(HFModel(model)), HFFlaxProvider(twin)
    sample = token_probe(ids[:2], mask[:2]).data
    listed = [[(i.name, i.shape, i.kind) for i in p.layers(sample)] for p in (hf, fx)]
    assert listed[0] == listed[1]
    names = [name for name, _, _ in listed[1]]
    assert len(names) == 7
    a, b = run(hf, ids, mask, names), run(fx, ids, mask, names)
    np.testing.assert_array_equal(a[MASK], b[MASK])
    for name in names:
        np.testing.assert_allclose(b[name][real], a[name][real], atol=1e-5, rtol=0, err_msg=name)


def test_a_task_model_is_twinned_by_its_base() -> None:
    import torch

    model = build("gpt2", head="lm")
    twin = from_torch(model)
    ids, mask = tiny.padded(4, 12, seed=4)
    with torch.no_grad():
        expected = model.transformer(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    real = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(twin(ids, mask))[real], expected.last_hidden_state.numpy()[real], atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_identity_matched_under_heavy_padding(family: str) -> None:
    model = build(family, seed=9)
    ids, mask = heavy(side="left" if family == "gpt2" else "right")
    assert mask.mean() < 0.15
    result = compare(HFModel(model), from_torch(model), token_probe(ids, mask), neurons="token",
                     provider_b="hf-flax", layers_a="*", layers_b="embed,block*", batch_size=32)
    assert [lr.info.name for lr in result.layers_a] == [lr.info.name for lr in result.layers_b]
    assert len(result.layers_a) == 7
    assert result.samples == int(mask.sum())  # the real tokens only
    np.testing.assert_array_equal(result.partner_a, np.arange(len(result.partner_a)))
    np.testing.assert_array_equal(result.partner_b, np.arange(len(result.partner_b)))
    assert min(lr.score for lr in result.layers_a + result.layers_b) >= 0.9999
    assert result.value_a.min() >= 0.9999 and result.value_b.min() >= 0.9999
    assert result.score.symmetric >= 0.9999


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("family", FAMILIES)
def test_padded_positions_change_nothing(family: str, side: str) -> None:
    model = build(family, seed=2)
    twin = from_torch(model)
    ids, mask = heavy(n=40, seed=11, side=side)
    other = np.where(mask > 0, ids, (ids + 17) % tiny.VOCAB)
    assert (other != ids).any()
    fx = HFFlaxProvider(twin)
    names = [i.name for i in fx.layers(token_probe(ids[:2], mask[:2]).data)]
    a, b = run(fx, ids, mask, names), run(fx, other, mask, names)
    real = mask.astype(bool)
    for name in names:
        np.testing.assert_allclose(b[name][real], a[name][real], atol=1e-6, rtol=0, err_msg=name)
    results = [compare(HFModel(model), twin, token_probe(i, mask), neurons="token", provider_b="hf-flax",
                       layers_a="block*.mlp.act", layers_b="block*.mlp.act") for i in (ids, other)]
    assert results[0].samples == results[1].samples == int(mask.sum())
    np.testing.assert_array_equal(results[0].partner_a, results[1].partner_a)
    assert abs(results[0].score.symmetric - results[1].score.symmetric) < 1e-9


def test_refusals_say_what_to_do() -> None:
    model = build("gpt2")
    twin = from_torch(model)
    with pytest.raises(NeurocorrError, match="token_probe"):
        compare(HFModel(model), twin, text_probe(["one text", "another one"]), neurons="token", provider_b="hf-flax")
    with pytest.raises(NeurocorrError, match="from_torch"):
        HFFlaxProvider(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))
    with pytest.raises(NeurocorrError, match="vocabulary of 120"):
        run(HFFlaxProvider(twin), np.full((2, 3), 500), np.ones((2, 3), np.int64), ["embed"])
    with pytest.raises(NeurocorrError, match="closest names: block0.mlp.act"):
        run(HFFlaxProvider(twin), np.ones((2, 3), np.int64), np.ones((2, 3), np.int64), ["block0.mlp.ac"])
    import torch

    with pytest.raises(NeurocorrError, match="no Flax twin for Linear"):
        from_torch(torch.nn.Linear(2, 2))


def test_jax_failing_to_import_leaves_the_transformers_plugin_working_without_hf_flax():
    """flax and neurocorr-jax installed but jax failing to import (blocked here): the transformers plugin
    still loads, with its torch and onnx providers, and only hf-flax is missing (neurocorr-jax says why)."""
    import os
    import subprocess
    import sys

    code = ("import sys; sys.modules['jax'] = None\n"
            "from neurocorr_core import PluginManager\n"
            "pm = PluginManager()\n"
            "info = {i.name: i for i in pm.plugins()}\n"
            "print(info['transformers'].status, info['jax'].status, sorted(pm.registry['provider']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ),
                         timeout=120)
    assert out.returncode == 0, out.stderr
    status, jax_status, providers = out.stdout.strip().split(" ", 2)
    assert (status, jax_status) == ("ok", "unavailable")
    assert "'hf'" in providers and "'hf-flax'" not in providers
