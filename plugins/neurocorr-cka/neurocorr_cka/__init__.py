"""Layer-level CKA metrics for neurocorr: ``cka`` (linear), ``cka-debiased``, ``cka-rbf``
(Kornblith et al.'s standard RBF CKA), ``cka-rbf-debiased`` and ``cka-rbf-minibatch``."""

from __future__ import annotations

from collections.abc import Sequence

from neurocorr_core import Metric, hookimpl

from .full_rbf import DebiasedRbfCka, RbfCka
from .metrics import DebiasedCka, LinearCka, MinibatchRbfCka
from .moments import LayerMoments

__all__ = ["DebiasedCka", "DebiasedRbfCka", "LayerMoments", "LinearCka", "MinibatchRbfCka", "RbfCka"]


@hookimpl
def neurocorr_similarity_metrics() -> Sequence[type[Metric]]:
    return [LinearCka, DebiasedCka, RbfCka, DebiasedRbfCka, MinibatchRbfCka]
