"""The procrustes metric against an independent reference: scipy's orthogonal Procrustes solver."""

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group

from neurocorr_core import NeurocorrError
from neurocorr_procrustes import Procrustes


def reference(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(similarity, residual) from scipy: centre, scale to unit Frobenius norm, pad the narrower
    layer with zero columns, solve min ||X R - Y|| over orthogonal R. ``scale`` is the optimum
    trace(R^T X^T Y); the residual ||X R - Y||^2 must equal 2 - 2 * similarity."""
    x, y = x.astype(np.float64), y.astype(np.float64)  # centre in float64, as a careful user would
    x, y = x - x.mean(0), y - y.mean(0)
    x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
    width = max(x.shape[1], y.shape[1])
    x = np.pad(x, ((0, 0), (0, width - x.shape[1])))
    y = np.pad(y, ((0, 0), (0, width - y.shape[1])))
    rotation, scale = orthogonal_procrustes(x, y)
    return float(scale), float(np.linalg.norm(x @ rotation - y) ** 2)


def streamed(x: np.ndarray, y: np.ndarray, sizes_a, sizes_b, batch: int = 17) -> np.ndarray:
    metric = Procrustes(sizes_a, sizes_b)
    for start in range(0, len(x), batch):
        metric.update(x[start:start + batch], y[start:start + batch])
    return metric.compute()


def layers(seed: int, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 9))
    y = np.concatenate([np.tanh(x[:, :4] @ rng.normal(size=(4, 5))),  # related to A's first layer
                        rng.normal(size=(n, 3)),                      # unrelated
                        x[:, 4:] @ rng.normal(size=(5, 6)) + rng.normal(size=(n, 6))], axis=1)
    return x.astype(np.float32), y.astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_layer_pair_equals_scipy(seed):
    x, y = layers(seed)
    sizes_a, sizes_b = (4, 5), (5, 3, 6)
    table = streamed(x, y, sizes_a, sizes_b)
    bounds_a, bounds_b = np.cumsum([0, *sizes_a]), np.cumsum([0, *sizes_b])
    for i in range(2):
        for j in range(3):
            xa, yb = x[:, bounds_a[i]:bounds_a[i + 1]], y[:, bounds_b[j]:bounds_b[j + 1]]
            want, residual = reference(xa, yb)
            assert table[i, j] == pytest.approx(want, abs=1e-6), (i, j)
            assert residual == pytest.approx(2 - 2 * table[i, j], abs=1e-6)
    assert table.shape == (2, 3) and table.dtype == np.float64
    assert ((table > 0) & (table <= 1)).all()


def test_rotated_scaled_shifted_copy_is_one_and_a_general_linear_map_is_not():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 6))
    q = ortho_group.rvs(6, random_state=4)
    rotated = 3.5 * x @ q + 7.0
    stretched = x @ np.diag([10, 1, 1, 1, 1, 0.1])
    table = streamed(x.astype(np.float32), np.concatenate([rotated, stretched], 1).astype(np.float32),
                     (6,), (6, 6))
    assert table[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert table[0, 1] < 0.9
    assert table[0, 1] == pytest.approx(reference(x, stretched)[0], abs=1e-6)


def test_large_offset_does_not_cost_precision():
    x, y = layers(5)
    shifted = (x.astype(np.float64) + 1e6).astype(np.float32)  # what float32 activations hold
    table = streamed(shifted, y, (9,), (14,))
    assert table[0, 0] == pytest.approx(reference(shifted, y)[0], abs=1e-6)


def test_constant_layer_is_nan_and_its_neurons_are_dead():
    x, y = layers(6)
    x[:, :4] = 2.5
    metric = Procrustes((4, 5), (14,))
    metric.update(x, y)
    table = metric.compute()
    assert np.isnan(table[0, 0]) and np.isfinite(table[1, 0])
    dead_a, dead_b = metric.constant()
    assert dead_a.tolist() == [True] * 4 + [False] * 5 and not dead_b.any()


def test_errors_name_the_problem():
    with pytest.raises(NeurocorrError, match="takes no options"):
        Procrustes((2,), (2,), kernel="rbf")
    with pytest.raises(NeurocorrError, match="at least one neuron"):
        Procrustes((2, 0), (2,))
    metric = Procrustes((2,), (3,))
    with pytest.raises(NeurocorrError, match=r"expected batches \(n, 2\) and \(n, 3\)"):
        metric.update(np.zeros((4, 3), np.float32), np.zeros((4, 3), np.float32))
    metric.update(np.ones((1, 2), np.float32), np.ones((1, 3), np.float32))
    with pytest.raises(NeurocorrError, match="at least 2 samples"):
        metric.compute()
    with pytest.raises(NeurocorrError, match="same layer sizes"):
        metric.merge(Procrustes((3,), (3,)))
