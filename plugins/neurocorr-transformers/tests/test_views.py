"""The sequence views of neurocorr_core.views against naive loops over the real (unmasked) tokens."""

from __future__ import annotations

import numpy as np
import pytest

from neurocorr_core import NeurocorrError
from neurocorr_core.views import MASK, apply_view, neuron_count
from neurocorr_pearson import Pearson


def _batch(rng: np.random.Generator, batch: int, width: int, features: int) -> tuple[np.ndarray, np.ndarray]:
    out = rng.normal(size=(batch, width, features)).astype(np.float32)
    lengths = rng.integers(1, width + 1, batch)
    mask = np.arange(width)[None, :] < lengths[:, None]
    mask[rng.random(mask.shape) < 0.2] = False  # holes too, not only right padding
    mask[np.arange(batch), rng.integers(0, width, batch)] = True  # every sequence keeps a token
    out[~mask] = rng.normal(1e3, 1e3, size=(int((~mask).sum()), features))  # padding holds garbage
    return out, mask


def _naive_rows(out: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.array([out[b, t] for b in range(out.shape[0]) for t in range(out.shape[1]) if mask[b, t]],
                    dtype=np.float64)


@pytest.mark.parametrize("batch", [1, 2, 7, 33, 64])
def test_views_equal_naive_loops(batch: int) -> None:
    rng = np.random.default_rng(batch)
    out, mask = _batch(rng, batch, 13, 5)
    np.testing.assert_array_equal(apply_view(out, "token", mask), _naive_rows(out, mask))
    means = [np.mean([out[b, t] for t in range(13) if mask[b, t]], axis=0, dtype=np.float64) for b in range(batch)]
    np.testing.assert_allclose(apply_view(out, "mean", mask), np.array(means), rtol=1e-6, atol=1e-6)
    first = [out[b, int(np.flatnonzero(mask[b])[0])] for b in range(batch)]
    np.testing.assert_array_equal(apply_view(out, "first", mask), np.array(first))
    assert neuron_count((13, 5), "token") == neuron_count((13, 5), "mean") == 5


@pytest.mark.parametrize("batch_size", [1, 3, 16, 64])
def test_token_pearson_equals_naive_flattening(batch_size: int) -> None:
    """Pearson over token rows streamed in batches of variable length equals np.corrcoef over the real
    tokens of every sequence, gathered by a plain loop (float64), to 1e-6."""
    rng = np.random.default_rng(batch_size)
    metric = Pearson([6], [4])
    rows_a, rows_b = [], []
    for _ in range(5):  # five probe batches, each padded to its own width
        width = int(rng.integers(1, 20))
        out, mask = _batch(rng, batch_size, width, 10)
        a, b = out[..., :6], out[..., 6:] + 0.5 * out[..., :4]
        metric.update(apply_view(a, "token", mask), apply_view(b, "token", mask))
        rows_a.append(_naive_rows(a, mask))
        rows_b.append(_naive_rows(b, mask))
    x, y = np.concatenate(rows_a), np.concatenate(rows_b)
    if len(x) < 3:
        pytest.skip("too few tokens drawn")
    reference = np.corrcoef(x.T, y.T)[:6, 6:]
    np.testing.assert_allclose(metric.compute(), reference, atol=1e-6)


def test_sequence_view_errors() -> None:
    out = np.zeros((2, 3, 4), np.float32)
    empty = np.array([[True, False, False], [False, False, False]])
    with pytest.raises(NeurocorrError, match="1 probe sequence.*no token that counts"):
        apply_view(out, "mean", empty)
    assert apply_view(out, "token", empty).shape == (1, 4)
    assert MASK == "__mask__"
