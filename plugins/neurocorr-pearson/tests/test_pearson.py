"""The Pearson metric in both modes (streaming co-moments and tiled) against the core's metric
conformance suite, and its tiles against numpy.corrcoef."""

import numpy as np
import pytest

import neurocorr_pearson
from neurocorr_testing import MetricConformance


class TestPearson(MetricConformance):
    metric = neurocorr_pearson.Pearson
    plugin = neurocorr_pearson


class TestPearsonTiled(MetricConformance):
    metric = neurocorr_pearson.Pearson
    plugin = neurocorr_pearson
    rtol = 2e-5
    atol = 2e-6  # float32 GEMM of standardised columns

    def make_metric(self, sizes_a, sizes_b):
        return neurocorr_pearson.Pearson(sizes_a, sizes_b, tiled=True, samples=self.samples)


@pytest.mark.parametrize("tiled", [False, True])
def test_tiles_are_blocks_of_corrcoef(tiled):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(70, 9)) * 3 + 100).astype(np.float32)
    y = (x[:, :6] @ rng.normal(size=(6, 7)) + rng.normal(size=(70, 7))).astype(np.float32)
    metric = neurocorr_pearson.Pearson([4, 5], [7], tiled=tiled, samples=50)  # more samples than announced
    for start in range(0, 70, 20):
        metric.update(x[start:start + 20], y[start:start + 20])
    ref = np.corrcoef(x.astype(np.float64).T, y.astype(np.float64).T)[:9, 9:]
    np.testing.assert_allclose(metric.tile(slice(3, 8), slice(1, 6)), ref[3:8, 1:6], atol=2e-6)
    assert metric.count == 70
    assert neurocorr_pearson.Pearson.tiled_state_bytes([4, 5], [7], 70) >= 4 * 70 * 16


def test_merge_refuses_another_mode():
    with pytest.raises(TypeError, match="same mode"):
        neurocorr_pearson.Pearson([2], [3]).merge(neurocorr_pearson.Pearson([2], [3], tiled=True))
