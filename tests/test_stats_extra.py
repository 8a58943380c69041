"""check_batch: the shared validation of a metric's input batch."""

import numpy as np
import pytest

from neurocorr_core import NeurocorrError
from neurocorr_core.stats import CoMoments, check_batch


def test_valid_batch_passes():
    check_batch(np.zeros((4, 3), np.float32), np.ones((4, 2)), 3, 2, "m")
    check_batch(np.zeros((4, 3), np.int64), np.ones((4, 2)), 3, 2, "m")


@pytest.mark.parametrize(("x", "y", "match"), [
    (np.zeros(3), np.zeros((3, 2)), r"model A must be a 2-D array .*\(3,\)"),
    ([[1.0, 2.0, 3.0]], np.zeros((1, 2)), r"model A must be a 2-D array .*list"),
    (np.zeros((4, 3)), np.zeros((4, 5)), r"model B has 5 neurons but the metric was built for 2"),
    (np.zeros((4, 3)), np.zeros((5, 2)), r"different numbers of samples \(4 vs 5\)"),
    (np.zeros((4, 3), complex), np.zeros((4, 2)), r"dtype complex128"),
    (np.zeros((4, 3), bool), np.zeros((4, 2)), r"dtype bool"),
])
def test_bad_batches_say_what_is_wrong(x, y, match):
    with pytest.raises(NeurocorrError, match=match):
        check_batch(x, y, 3, 2, "m")


def test_non_finite_values_name_the_neurons():
    y = np.zeros((4, 2))
    y[1, 1] = np.nan
    with pytest.raises(NeurocorrError,
                       match=r"spearman: the batch of model B holds NaN/Inf in neuron\(s\) \[1\]"):
        check_batch(np.zeros((4, 3)), y, 3, 2, "spearman")
    x = np.zeros((4, 3), np.float32)
    x[0, 0] = np.inf
    with pytest.raises(NeurocorrError, match=r"model A holds NaN/Inf in neuron\(s\) \[0\]"):
        check_batch(x, np.zeros((4, 2)), 3, 2, "m")


def test_tiny_activations_are_summed_in_float64_not_lost_to_float32_underflow():
    """Squares of values near 1e-25 underflow in float32: the gathered sums take those neurons
    in float64, so they are neither reported constant nor given a wrong variance."""
    rng = np.random.default_rng(3)
    x = rng.random((700, 3)).astype(np.float32)
    x[:, 1] *= np.float32(1e-25)
    y = rng.random((700, 2)).astype(np.float32)
    y[:, 0] += x[:, 1] * np.float32(1e24)  # related to the tiny neuron
    co = CoMoments(3, 2, chunk=256)
    for i in range(0, 700, 100):
        co.update(x[i:i + 100], y[i:i + 100])
    assert not co.constant_x.any()
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(co.var_x, x64.var(axis=0) * 700, rtol=1e-6)  # sums of squared deviations
    ref = np.corrcoef(x64.T, y.astype(np.float64).T)[:3, 3:]
    np.testing.assert_allclose(co.correlation(), ref, atol=1e-6)
