"""The float32 fast path of linear CKA (the core's chunked co-moments) against the textbook
Gram-matrix formula: many chunks, shard merges, dead layers, precision mismatch."""

from __future__ import annotations

import numpy as np
import pytest

from cka_reference import hsic_biased, linear_gram, table
from neurocorr_cka import LinearCka
from neurocorr_cka.moments import StreamedMoments
from neurocorr_core import NeurocorrError

SIZES_A, SIZES_B = [3, 5, 1], [4, 2, 3]


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 9)) * rng.uniform(0.1, 5, size=9) + 40.0
    y = np.hstack([x[:, :4] @ rng.normal(size=(4, 4)), np.tanh(x[:, 4:9] / 3) ** 2]) - 7.0
    return x.astype(np.float32), (y + 0.3 * rng.normal(size=(n, 9))).astype(np.float32)


def feed(metric, x, y, batch=37):
    for s in range(0, len(x), batch):
        metric.update(x[s:s + batch], y[s:s + batch])
    return metric


def test_many_chunks_and_merged_shards_equal_the_textbook_formula(monkeypatch):
    x, y = data(600, 1)
    ref = table(x.astype(np.float64), y.astype(np.float64), SIZES_A, SIZES_B, linear_gram, hsic_biased)
    whole = LinearCka(SIZES_A, SIZES_B)
    assert isinstance(whole.moments, StreamedMoments)
    whole.moments.co.chunk = 64  # several chunks (the buffers are made by the first batch)
    np.testing.assert_allclose(feed(whole, x, y).compute(), ref, atol=1e-5, rtol=0)
    left = feed(LinearCka(SIZES_A, SIZES_B), x[:250], y[:250])
    right = feed(LinearCka(SIZES_A, SIZES_B), x[250:], y[250:])
    left.merge(right)
    np.testing.assert_allclose(left.compute(), ref, atol=1e-5, rtol=0)


def test_dead_layer_is_nan_even_for_values_float32_cannot_hold():
    x, y = data(80, 2)
    x64 = x.astype(np.float64)
    x64[:, 8] = 0.3  # layer 2 of A: one constant neuron, not a float32 number
    got = feed(LinearCka(SIZES_A, SIZES_B), x64, y).compute()
    assert np.isnan(got[2]).all() and np.isfinite(got[:2]).all()


def test_precisions_do_not_merge():
    a, b = LinearCka([2], [2]), LinearCka([2], [2], precision="float64")
    with pytest.raises(NeurocorrError, match="same precision"):
        a.merge(b)
