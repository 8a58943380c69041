"""Exact Spearman rank correlation between every pair of neurons, in bounded memory."""

from __future__ import annotations

from collections.abc import Sequence

from neurocorr_core import Metric, hookimpl

from .metric import DEFAULT_BUDGET, Spearman, parse_bytes
from .ranks import average_ranks

__all__ = ["DEFAULT_BUDGET", "Spearman", "average_ranks", "parse_bytes"]


@hookimpl
def neurocorr_similarity_metrics() -> Sequence[type[Metric]]:
    return [Spearman]
