"""The activation cache under the ``token`` view: an entry holds a shard's real tokens (a number
that differs from the shard's sequences), and is reused; a damaged row count is recomputed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from types import SimpleNamespace

import numpy as np
import pytest

from neurocorr_core import ActivationProvider, LayerInfo, compare, hookimpl
from neurocorr_core.views import MASK
from neurocorr_scale.cache import ActivationCache, EntryKey
from neurocorr_scale.executor import Shard, extract, model_source

T = 9  # positions per sequence


class SeqNet:
    """Sequences of scalar tokens: column 0 of a sample is its length, columns 1..T its tokens.
    Two layers of (batch, T, features) outputs; padded positions hold garbage."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.w1, self.b1 = rng.normal(size=(1, 6)), rng.normal(size=6)
        self.w2 = rng.normal(size=(6, 5))
        self.calls: list[int] = []

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        self.calls.append(len(x))
        mask = np.arange(T)[None, :] < x[:, :1]
        h1 = np.tanh(x[:, 1:, None] @ self.w1 + self.b1)
        h2 = np.maximum(h1 @ self.w2, 0) + 0.1 * h1[..., :5]
        garbage = np.where(mask[..., None], 0.0, 1e3)
        return {"h1": (h1 + garbage).astype(np.float32), "h2": (h2 + garbage[..., :1]).astype(np.float32),
                MASK: mask}

    def passes(self) -> int:
        return sum(1 for n in self.calls if n > 2)  # the layer listing runs two samples


class SeqProvider(ActivationProvider):
    name = "seq-test"
    handles = "SeqNet objects of this test"

    @classmethod
    def accepts(cls, model: object) -> bool:
        return isinstance(model, SeqNet)

    def layers(self, sample: np.ndarray) -> list[LayerInfo]:
        out = self.model.run(sample)
        return [LayerInfo(n, out[n].shape[1:], i, "activation", "Tanh") for i, n in enumerate(("h1", "h2"))]

    def activations(self, batches: Iterable[np.ndarray], layers: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
        for batch in batches:
            out = self.model.run(batch)
            yield {**{n: out[n] for n in layers}, MASK: out[MASK]}

    def fingerprint(self) -> str:  # an in-memory model is cached only with its provider's fingerprint
        return f"seq-net-{self.model.w1.tobytes().hex()[:32]}"


@hookimpl
def neurocorr_activation_providers() -> list[type[ActivationProvider]]:
    return [SeqProvider]


@pytest.fixture
def seq_pm(pm):
    pm.register(SimpleNamespace(neurocorr_activation_providers=neurocorr_activation_providers), "seq-test")
    return pm


def _probe(n: int = 40, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    probe = rng.normal(size=(n, T + 1)).astype(np.float32)
    probe[:, 0] = rng.integers(1, T + 1, n)  # 1..T real tokens per sequence
    return probe


def _naive_best(net_a: SeqNet, net_b: SeqNet, probe: np.ndarray) -> np.ndarray:
    """Best |r| of every neuron of A over B's, from the unmasked tokens flattened, in float64."""
    def rows(net: SeqNet) -> np.ndarray:
        out = net.run(probe)
        keep = out[MASK]
        return np.concatenate([out["h1"][keep], out["h2"][keep]], axis=1).astype(np.float64)
    x, y = rows(net_a), rows(net_b)
    r = np.corrcoef(x, y, rowvar=False)[: x.shape[1], x.shape[1]:]
    return np.abs(r).max(axis=1)


def test_token_view_entries_are_reused(seq_pm, tmp_path):
    probe = _probe()
    tokens = int(probe[:, 0].sum())
    assert tokens != len(probe)  # the rows of an entry are tokens, not sequences
    net_a, net_b = SeqNet(0), SeqNet(1)
    kw = {"neurons": "token", "depth_penalty": "none", "cache": tmp_path, "shards": 2, "plugin_manager": seq_pm}
    first = compare(net_a, net_b, probe, **kw)
    assert (net_a.passes(), net_b.passes()) == (2, 2)  # one batch per shard
    assert first.samples == tokens
    store = ActivationCache(tmp_path, 10**8)
    assert len(store.entries()) == 2 * 2 * 2  # 2 models x 2 layers x 2 shards
    again = compare(net_a, net_b, probe, **kw)
    assert (net_a.passes(), net_b.passes()) == (2, 2)  # no forward pass: every entry was a hit
    want = _naive_best(net_a, net_b, probe)
    for result in (first, again):
        assert result.samples == tokens
        np.testing.assert_allclose(result.value_a, want, atol=1e-6, rtol=0)


def test_entries_that_disagree_on_the_rows_are_recomputed(seq_pm, tmp_path):
    probe = _probe(12, seed=4)
    net = SeqNet(2)
    provider = SeqProvider(net)
    source = model_source(net, provider)
    layers = tuple(provider.layers(probe[:2]))
    shard = Shard(0, 0, len(probe), "f" * 64, "p[0:12]")
    cache = ActivationCache(tmp_path, 10**8)
    good = extract(source, layers, "token", shard, probe, 4, cache)
    tokens = int(probe[:, 0].sum())
    assert good.shape == (tokens, 11) and net.passes() == 3  # 12 sequences in batches of 4
    cache.put(EntryKey(source.fingerprint, "h2", "token", shard.fingerprint), good[:-1, 6:], {"model": "m"})
    again = extract(source, layers, "token", shard, probe, 4, cache)
    assert net.passes() == 6  # h1's entry (the right rows) alone cannot be trusted: both recomputed
    np.testing.assert_array_equal(again, good)
    extract(source, layers, "token", shard, probe, 4, cache)
    assert net.passes() == 6  # and stored again, whole
