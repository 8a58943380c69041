"""neurocorr-procrustes: orthogonal Procrustes similarity between the layers of two networks.

An example of a third-party metric plugin. Everything it uses from neurocorr is public:
``neurocorr_core.Metric``, ``neurocorr_core.hookimpl``, ``neurocorr_core.NeurocorrError`` and the
streaming co-moments ``neurocorr_core.stats.CoMoments``.
"""

from __future__ import annotations

from collections.abc import Sequence

from neurocorr_core import Metric, hookimpl

from .metric import Procrustes, procrustes_similarity

__all__ = ["Procrustes", "procrustes_similarity"]


@hookimpl
def neurocorr_similarity_metrics() -> Sequence[type[Metric]]:
    """The hook neurocorr calls to find the metrics of this plugin."""
    return [Procrustes]
