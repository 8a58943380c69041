"""Padding never counts: token-level comparisons of tiny GPT-2 and BERT models against a naive
reference over the real tokens only; self-comparisons under heavy padding; padded positions changed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tiny
from neurocorr_core import compare
from neurocorr_core.views import MASK
from neurocorr_transformers import HFModel, HFProvider, token_probe

LAYER = "block1.mlp.act"


def _captured(model: Any, module: Any, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``module``'s output over the whole padded probe in one forward pass, by a plain torch hook."""
    import torch

    got: list[np.ndarray] = []
    handle = module.register_forward_hook(lambda _m, _a, out: got.append(out.detach().double().numpy()))
    try:
        with torch.no_grad():
            model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    finally:
        handle.remove()
    return got[0]


def _real_tokens(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.array([values[b, t] for b in range(len(mask)) for t in range(mask.shape[1]) if mask[b, t]])


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_token_pearson_equals_naive_reference(batch_size: int) -> None:
    """Each GPT-2 neuron's best |r| and partner over the real tokens equal np.corrcoef over the
    unmasked positions, gathered by a loop, to 1e-6, whatever the batch size (every batch padded)."""
    a, b = tiny.gpt2(1), tiny.gpt2(2)
    ids, mask = tiny.padded(64, 24, seed=batch_size)
    result = compare(HFModel(a), HFModel(b), token_probe(ids, mask), neurons="token", layers_a=LAYER,
                     layers_b=LAYER, batch_size=batch_size)
    x = _real_tokens(_captured(a, a.h[1].mlp.act, ids, mask), mask)
    y = _real_tokens(_captured(b, b.h[1].mlp.act, ids, mask), mask)
    assert len(x) == mask.sum() > 64
    r = np.abs(np.corrcoef(x.T, y.T)[:x.shape[1], x.shape[1]:])
    np.testing.assert_allclose(result.value_a, r.max(axis=1), atol=1e-6)
    np.testing.assert_allclose(result.value_b, r.max(axis=0), atol=1e-6)
    assert (result.partner_a == r.argmax(axis=1)).mean() > 0.95  # near-ties may swap within 1e-6
    assert result.score.symmetric < 0.9  # two seeds: a test that can fail


@pytest.mark.parametrize("family", ["gpt2", "bert"])
@pytest.mark.parametrize("view", ["token", "mean", "first"])
def test_self_comparison_scores_one_under_heavy_padding(family: str, view: str) -> None:
    model = getattr(tiny, family)(3)
    ids, mask = tiny.padded(24, 40, seed=4, shortest=2)
    mask[:, 8:] = 0  # at least 80% of the positions are padding
    result = compare(HFModel(model), HFModel(model), token_probe(ids, mask), neurons=view, layers_a="*",
                     layers_b="*", batch_size=5)
    assert result.score.symmetric == pytest.approx(1.0, abs=1e-6)
    assert len(result.layers_a) == 7


class _GarbageAtPadding(HFProvider):
    """The hf provider with NaN and huge values written into every padded position of every layer."""

    name = "hf-garbage"

    @classmethod
    def accepts(cls, model: object) -> bool:
        return False  # asked for by name only

    def activations(self, batches: Any, layers: Any) -> Any:
        for out in super().activations(batches, layers):
            pad = ~out[MASK]
            for name in layers:
                out[name][pad] = np.nan
                out[name][pad, :1] = 1e30
            yield out


@pytest.mark.parametrize("family", ["gpt2", "bert"])
@pytest.mark.parametrize("view", ["token", "mean", "first"])
def test_padded_positions_change_nothing(family: str, view: str) -> None:
    """Other token ids at the padded positions, or NaN/1e30 written into the hidden states there,
    leave every score and partner as it was."""
    a, b = getattr(tiny, family)(5), getattr(tiny, family)(6)
    ids, mask = tiny.padded(20, 16, seed=7)
    other = np.where(mask == 1, ids, np.random.default_rng(8).integers(1, tiny.VOCAB, ids.shape))
    assert (other != ids).any()
    runs = [compare(HFModel(a), HFModel(b), token_probe(i, mask), neurons=view, layers_a="*", layers_b="*",
                    batch_size=6, **kw)
            for i, kw in ((ids, {}), (other, {}), (ids, {"provider_a": "hf-garbage", "provider_b": "hf-garbage"}))]
    for run in runs[1:]:
        np.testing.assert_allclose(run.value_a, runs[0].value_a, atol=1e-6)
        np.testing.assert_allclose(run.layer_table, runs[0].layer_table, atol=1e-6)
        np.testing.assert_array_equal(run.partner_a, runs[0].partner_a)


@pytest.fixture(autouse=True)
def _garbage_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    from neurocorr_core.plugins import get_plugin_manager

    pm = get_plugin_manager()
    registry = pm.registry["provider"]
    monkeypatch.setitem(registry, "hf-garbage", (_GarbageAtPadding, next(iter(registry.values()))[1]))


def test_padded_batch_equals_each_sequence_alone() -> None:
    """The real tokens' activations from a padded batch equal each sequence run alone, unpadded
    (float32 kernels differ by rounding only): the mask the provider passes is the model's own."""
    model = tiny.bert(9)
    ids, mask = tiny.padded(6, 12, seed=10)
    provider = HFProvider(HFModel(model))
    batch = next(provider.activations([token_probe(ids, mask).data], [LAYER]))
    for row in range(6):
        n = int(mask[row].sum())
        alone = next(provider.activations([token_probe(ids[row:row + 1, :n]).data], [LAYER]))
        np.testing.assert_allclose(batch[LAYER][row, :n], alone[LAYER][0], atol=1e-5)
