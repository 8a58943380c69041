"""check_batch: the shared validation of a metric's input batch."""

import numpy as np
import pytest

from neurocorr_core import NeurocorrError
from neurocorr_core.stats import check_batch


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
