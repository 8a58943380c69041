"""Built-in matching strategies (registered by the core as the plugin ``builtin``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .interfaces import Match, MatchingStrategy
from .plugins import hookimpl


class MaxMatching(MatchingStrategy):
    """Every row's best column: the seed paper's best match. Ties go to the lowest index."""

    name = "max"

    def match(self, scores: np.ndarray) -> Match:
        if scores.shape[1] == 0:
            return Match(np.full(scores.shape[0], -1), np.zeros(scores.shape[0]))
        partner = np.argmax(scores, axis=1)
        return Match(partner, scores[np.arange(scores.shape[0]), partner])


@hookimpl
def neurocorr_matching_strategies() -> Sequence[type[MatchingStrategy]]:
    return [MaxMatching]
