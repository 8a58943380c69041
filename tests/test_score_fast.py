"""The fast paths of ``max`` scoring against the generic ones: layer tables by reduceat,
column matches of a transposed view by strips, scores computed in place."""

from __future__ import annotations

import numpy as np

from neurocorr_core.interfaces import Match, MatchingStrategy
from neurocorr_core.matching import MaxMatching
from neurocorr_core.score import full_directions, similarity_scores


class PlainMax(MatchingStrategy):
    """Brute force: numpy.argmax on a contiguous copy (not a MaxMatching, so score.py takes
    its generic path)."""

    name = "plain-max"

    def match(self, scores: np.ndarray) -> Match:
        s = np.ascontiguousarray(scores)
        if s.shape[1] == 0:
            return Match(np.full(s.shape[0], -1), np.zeros(s.shape[0]))
        partner = np.argmax(s, axis=1)
        return Match(partner, s[np.arange(len(s)), partner])


def sim(seed: int, rows: int = 70, cols: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = np.tanh(rng.normal(size=(rows, cols)))
    r[rng.random((rows, cols)) < 0.3] = 0.5  # many ties
    r[3] = np.nan  # a constant neuron
    return r


def test_max_tables_and_directions_equal_the_generic_path():
    sizes_r, sizes_c = [10, 1, 40, 19], [25, 5, 20]
    for seed in range(3):
        fast = full_directions(sim(seed), sizes_r, sizes_c, MaxMatching(), "paper", True)
        slow = full_directions(sim(seed), sizes_r, sizes_c, PlainMax(), "paper", True)
        for got, want in zip(fast, slow, strict=True):
            assert got is not None and want is not None
            np.testing.assert_array_equal(got.partner, want.partner)
            np.testing.assert_allclose(got.value, want.value, rtol=1e-15)
            np.testing.assert_allclose(got.table, want.table, rtol=1e-12)
            assert abs(got.score - want.score) < 1e-12


def test_column_matches_of_a_transposed_view_break_ties_like_argmax():
    rng = np.random.default_rng(4)
    scores = rng.integers(0, 3, size=(37, 23)).astype(np.float64)  # ties everywhere
    got = MaxMatching().match(scores.T)
    np.testing.assert_array_equal(got.partner, np.argmax(scores, axis=0))
    np.testing.assert_array_equal(got.score, scores.max(axis=0))


def test_scores_in_place_only_when_asked():
    r = sim(5)
    kept = r.copy()
    s = similarity_scores(r, True)
    np.testing.assert_array_equal(r, kept)
    assert s is not r and not np.isnan(s).any() and s[3].max() == 0 and (s >= 0).all()
    same = similarity_scores(r, True, overwrite=True)
    assert same is r
    np.testing.assert_array_equal(same, s)
    signed = similarity_scores(kept, False, overwrite=True)
    assert signed is kept and signed.min() < 0 and not np.isnan(signed).any()
