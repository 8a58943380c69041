"""Layer-level CKA metrics for neurocorr: ``cka`` (linear), ``cka-debiased``, ``cka-rbf``."""

from __future__ import annotations

from collections.abc import Sequence

from neurocorr_core import Metric, hookimpl

from .metrics import DebiasedCka, LinearCka, RbfCka
from .moments import LayerMoments

__all__ = ["DebiasedCka", "LayerMoments", "LinearCka", "RbfCka"]


@hookimpl
def neurocorr_similarity_metrics() -> Sequence[type[Metric]]:
    return [LinearCka, DebiasedCka, RbfCka]
