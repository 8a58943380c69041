"""The core's metric conformance suite for the three CKA metrics."""

from typing import ClassVar

import neurocorr_cka
from neurocorr_cka import DebiasedCka, DebiasedRbfCka, LinearCka, MinibatchRbfCka, RbfCka
from neurocorr_core import Metric
from neurocorr_testing import MetricConformance


class TestLinearCka(MetricConformance):
    metric: ClassVar[type[Metric]] = LinearCka
    plugin: ClassVar[object] = neurocorr_cka


class TestLinearCkaFloat64(MetricConformance):
    metric: ClassVar[type[Metric]] = LinearCka
    plugin: ClassVar[object] = neurocorr_cka
    rtol: ClassVar[float] = 1e-10
    atol: ClassVar[float] = 1e-12

    def make_metric(self, sizes_a, sizes_b):
        return LinearCka(sizes_a, sizes_b, precision="float64")


class TestDebiasedCka(MetricConformance):
    metric: ClassVar[type[Metric]] = DebiasedCka
    plugin: ClassVar[object] = neurocorr_cka


class TestMinibatchRbfCka(MetricConformance):
    """One minibatch (the default batch_size exceeds the 60 samples), so batch cuts and shard
    merges cannot change the result; with several minibatches merges are exact only on
    minibatch boundaries (tested in test_cka.py)."""

    metric: ClassVar[type[Metric]] = MinibatchRbfCka
    plugin: ClassVar[object] = neurocorr_cka


class TestRbfCka(MetricConformance):
    """Full-sample RBF CKA: the kept samples are joined in any order, so merges are exact."""

    metric: ClassVar[type[Metric]] = RbfCka
    plugin: ClassVar[object] = neurocorr_cka


class TestDebiasedRbfCka(MetricConformance):
    metric: ClassVar[type[Metric]] = DebiasedRbfCka
    plugin: ClassVar[object] = neurocorr_cka
