"""Statistics over seeds, checked against scipy and the statistics module."""

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from neurocorr_paper.summary import fmt, mean_sd, ranks, spearman, spread


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(-3, 3)), min_size=3, max_size=12))
def test_spearman_matches_scipy_with_ties(pairs):
    x, y = [float(a) for a, _ in pairs], [float(b) for _, b in pairs]
    ours = spearman(x, y)
    if len(set(x)) == 1 or len(set(y)) == 1:
        assert math.isnan(ours)
    else:
        assert ours == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_spearman_sign_and_degenerate_cases():
    assert spearman([1, 2, 3, 4, 5], [10, 20, 30, 40, 50]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2], [2, 1]))  # two points always give +-1: not reported
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="equal lengths"):
        spearman([1, 2, 3], [1, 2])


def test_ranks_average_ties():
    np.testing.assert_allclose(ranks([10, 30, 20, 30]), stats.rankdata([10, 30, 20, 30]))


def test_mean_sd_is_sample_sd():
    values = [0.91, 0.93, 0.96]
    mean, sd = mean_sd(values)
    assert mean == pytest.approx(statistics.mean(values))
    assert sd == pytest.approx(statistics.stdev(values))
    assert math.isnan(mean_sd([0.5])[1]) and mean_sd([0.5])[0] == 0.5
    assert all(math.isnan(v) for v in mean_sd([]))
    assert mean_sd([1.0, math.nan, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))


def test_spread_counts_signs():
    s = spread([0.5, -0.2, math.nan, 0.9])
    assert (s["positive"], s["negative"], s["undefined"]) == (2, 1, 1)
    assert s["min"] == -0.2 and s["max"] == 0.9
    assert s["mean"] == pytest.approx((0.5 - 0.2 + 0.9) / 3)


def test_fmt():
    assert fmt(0.96214, 0.00123) == "0.9621 ± 0.0012"
    assert fmt(0.5, math.nan) == "0.5000"
    assert fmt(math.nan, math.nan) == "-"
