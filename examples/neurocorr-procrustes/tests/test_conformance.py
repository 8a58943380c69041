"""The example plugin passes neurocorr's metric conformance suite, and the suite can fail."""

import numpy as np
import pytest

import neurocorr_procrustes
from neurocorr_procrustes import Procrustes
from neurocorr_testing import MetricConformance


class TestProcrustes(MetricConformance):
    metric = Procrustes
    plugin = neurocorr_procrustes


class ForgetfulMerge(Procrustes):
    """A broken variant: merge() drops the other shard."""

    name = "procrustes-broken"

    def merge(self, other):
        pass


class Uncentred(Procrustes):
    """A broken variant: ignores the offsets it was given, so a shift changes the answer."""

    name = "procrustes-uncentred"

    def update(self, x, y):
        super().update(x + np.arange(len(x), dtype=np.float32)[:, None], y)


@pytest.mark.parametrize(("broken", "check"), [
    (ForgetfulMerge, "test_merge_equals_one_pass"),
    (Uncentred, "test_batch_split_invariance"),
])
def test_the_suite_catches_a_broken_metric(broken, check):
    suite = type("Suite", (MetricConformance,), {"metric": broken})()
    with pytest.raises(AssertionError):
        getattr(suite, check)()
