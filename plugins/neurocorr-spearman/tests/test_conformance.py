"""The core's metric conformance suite, in memory and on the spilled path."""

from typing import ClassVar

import neurocorr_spearman
from neurocorr_core import Metric
from neurocorr_spearman import Spearman
from neurocorr_testing import MetricConformance


class TestSpearmanInMemory(MetricConformance):
    metric: ClassVar[type[Metric]] = Spearman
    plugin: ClassVar[object] = neurocorr_spearman


class TestSpearmanSpilled(MetricConformance):
    metric: ClassVar[type[Metric]] = Spearman
    plugin: ClassVar[object] = neurocorr_spearman

    def make_metric(self, sizes_a, sizes_b):
        metric = Spearman(sizes_a, sizes_b, memory_budget=4000)  # 60 samples: spilled, 1 neuron a chunk
        self._made = [*getattr(self, "_made", []), metric]
        return metric

    def teardown_method(self):
        for metric in getattr(self, "_made", []):
            if metric.count >= 30:  # 30 samples of 18 neurons and their ranks exceed 4000 bytes
                assert metric.spilled
            metric.close()
