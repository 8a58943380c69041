"""neurocorr_paper.stats against scipy.stats on fixed inputs (and brute force where scipy has
no equivalent: the pooled within-group test, leave-one-group-out)."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as ss

from neurocorr_paper import stats as st

X5 = [0.41, 0.90, 0.93, 0.89, 0.56]  # five models, as the paper's five MLPs
Y5 = [0.87, 0.82, 0.82, 0.85, 0.79]  # a tie in y
X8 = [1, 2, 2, 3, 4, 5, 5, 6.0]
Y8 = [2, 1, 3, 3, 5, 4, 6, 6.0]
SCIPY = {"spearman": lambda a, b: ss.spearmanr(a, b).statistic,
         "kendall": lambda a, b: ss.kendalltau(a, b).statistic}


@pytest.mark.parametrize("method", ["spearman", "kendall"])
@pytest.mark.parametrize("x, y", [(X5, Y5), (X8, Y8), ([3, 1, 2, 5, 4, 6, 9, 7, 8, 0], list(range(10)))])
def test_correlation_matches_scipy(method, x, y):
    assert st.correlation(x, y, method) == pytest.approx(SCIPY[method](x, y), abs=1e-12)


def test_correlation_undefined():
    assert math.isnan(st.correlation([1, 2], [2, 1]))
    assert math.isnan(st.correlation([1, 1, 1], [1, 2, 3], "kendall"))
    with pytest.raises(ValueError, match="equally long"):
        st.correlation([1, 2, 3], [1, 2])


@pytest.mark.parametrize("method", ["spearman", "kendall"])
@pytest.mark.parametrize("x, y", [(X5, Y5), (X8, Y8), ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])])
def test_exact_permutation_p_matches_scipy(method, x, y):
    """All n! pairings (scipy: one sample, 'pairings', so only y's order is permuted)."""
    x, y = np.asarray(x), np.asarray(y)
    ref = ss.permutation_test((y,), lambda b, axis=-1: st.STATISTICS[method](x, b),
                              permutation_type="pairings", n_resamples=np.inf, vectorized=True)
    assert st.permutation_p(x, y, method) == pytest.approx(ref.pvalue, abs=1e-12)


def test_five_models_rho_09_has_p_0083():
    """The issue's number: with five models, rho = 0.9 has exact two-sided p = 10/120 = .083."""
    assert st.correlation([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]) == pytest.approx(0.9)
    assert st.permutation_p([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]) == pytest.approx(10 / 120)


@pytest.mark.parametrize("method", ["spearman", "kendall"])
def test_monte_carlo_permutation_p_near_scipy(method):
    rng = np.random.default_rng(7)
    x = rng.random(30)
    y = x + 2.5 * rng.random(30)
    ref = ss.permutation_test((y,), lambda b, axis=-1: st.STATISTICS[method](x, b),
                              permutation_type="pairings", n_resamples=9999, vectorized=True, rng=1)
    p = st.permutation_p(x, y, method, resamples=9999, seed=2)
    assert 0.005 < ref.pvalue < 0.5  # a case where the tolerance below means something
    assert p == pytest.approx(ref.pvalue, abs=0.015)


@pytest.mark.parametrize("method", ["spearman", "kendall"])
def test_bootstrap_matches_scipy(method):
    """Same generator, same resamples: scipy's paired percentile bootstrap to the last bit."""
    rng = np.random.default_rng(3)
    x = rng.random(12)
    y = x + rng.random(12)
    ref = ss.bootstrap((x, y), lambda a, b, axis=-1: st.STATISTICS[method](a, b), paired=True,
                       vectorized=True, method="percentile", n_resamples=3000,
                       random_state=np.random.default_rng(5)).confidence_interval
    low, high = st.bootstrap_ci(x, y, method, resamples=3000, seed=5)
    assert (low, high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert low < st.correlation(x, y, method) < high


def test_rank_test_record():
    r = st.rank_test(X5, Y5)
    assert r.exact and r.n == 5 and r.value == pytest.approx(SCIPY["spearman"](X5, Y5))
    assert r.low <= r.value <= r.high and 0 < r.p <= 1
    assert r.to_dict("s_")["s_p"] == r.p


def _brute_pooled(groups, method):
    """Every within-group arrangement, enumerated naively."""
    n = sum(len(x) for x, _ in groups)
    w = [len(x) / n for x, _ in groups]
    observed = sum(wi * SCIPY[method](x, y) for wi, (x, y) in zip(w, groups, strict=True))
    null = []
    for perms in itertools.product(*(itertools.permutations(range(len(x))) for x, _ in groups)):
        null.append(sum(wi * SCIPY[method](x, np.asarray(y)[list(p)])
                        for wi, (x, y), p in zip(w, groups, perms, strict=True)))
    null = np.asarray(null)
    tol = 1e-9
    return observed, min(1.0, 2 * min(np.mean(null <= observed + tol), np.mean(null >= observed - tol)))


@pytest.mark.parametrize("method", ["spearman", "kendall"])
def test_pooled_within_exact_against_brute_force(method):
    groups = [([0.1, 0.4, 0.3, 0.9], [1, 3, 2, 4]), ([0.5, 0.2, 0.8, 0.7, 0.6], [2, 1, 5, 3, 3])]
    x = [v for g in groups for v in g[0]]
    y = [v for g in groups for v in g[1]]
    labels = [0] * 4 + [1] * 5
    res = st.pooled_within(x, y, labels, method)
    observed, p = _brute_pooled(groups, method)
    assert res.exact and res.groups == 2 and res.n == 9
    assert res.value == pytest.approx(observed, abs=1e-12)
    assert res.p == pytest.approx(p, abs=1e-12)


def test_pooled_within_monte_carlo_near_exact(monkeypatch):
    rng = np.random.default_rng(4)
    x = rng.random(18)
    y = x + rng.random(18)
    labels = np.repeat([0, 1, 2], 6)
    exact = st.pooled_within(x, y, labels)
    monkeypatch.setattr(st, "EXACT_MAX", 3)  # forces the Monte Carlo path
    mc = st.pooled_within(x, y, labels, resamples=20000)
    assert exact.exact and not mc.exact
    assert mc.value == pytest.approx(exact.value)
    assert mc.p == pytest.approx(exact.p, abs=0.01)


def test_pooled_within_ignores_differences_between_groups():
    """Group means that rise together make a strong overall correlation; within every group
    y is unrelated to x, and the pooled test says so."""
    rng = np.random.default_rng(0)
    x, y, labels = [], [], []
    for g in range(4):
        xs = g + rng.random(5)
        x += list(xs)
        y += list(g + rng.random(5))
        labels += [g] * 5
    assert st.rank_test(x, y).p < 0.01
    assert st.pooled_within(x, y, labels).p > 0.1


def test_sign_flip_matches_scipy():
    d = np.array([0.03, -0.01, 0.05, 0.02, 0.04, -0.02, 0.06])
    ref = ss.permutation_test((d,), lambda a, axis=-1: np.mean(a, axis=axis), permutation_type="samples",
                              n_resamples=np.inf, vectorized=True)
    assert st.sign_flip_p(d) == pytest.approx(ref.pvalue, abs=1e-12)


def test_logo_error_by_hand():
    """Three groups on the line y = 2x (the line predicts each held-out group exactly)."""
    x = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    y = [2 * v for v in x]
    res = st.logo_error(x, y, [0, 0, 1, 1, 2, 2])
    assert res.groups == 3 and res.mae_line == pytest.approx(0.0, abs=1e-9) and res.wins == 3
    # mean baseline: group 0 held out -> rest mean 7, errors |7-0|, |7-2| -> 6; group 1: mean 5,
    # |5-4|, |5-6| -> 1; group 2: mean 3, |3-8|, |3-10| -> 6
    assert res.mae_mean == pytest.approx((6 + 1 + 6) / 3)
    assert res.p == pytest.approx(0.25)  # 3 groups: 8 sign patterns, the two extremes


@pytest.mark.parametrize("n", [6, 8, 20, 50])
def test_wilcoxon_exact_matches_scipy(n):
    d = np.random.default_rng(n).normal(0.3, 1.0, n)
    ref = ss.wilcoxon(d, method="exact")
    res = st.wilcoxon(d)
    assert res.exact and res.n == n
    assert res.statistic == pytest.approx(ref.statistic, abs=1e-12)
    assert res.p == pytest.approx(ref.pvalue, abs=1e-12)


def test_wilcoxon_normal_approximation_matches_scipy():
    d = np.round(np.random.default_rng(1).normal(0.1, 1.0, 155), 2)  # n > 50, tied |d|, one zero
    ref = ss.wilcoxon(d, method="asymptotic")
    res = st.wilcoxon(d)
    assert not res.exact and res.n == np.count_nonzero(d)  # a zero difference is dropped
    assert res.statistic == pytest.approx(ref.statistic, abs=1e-12)
    assert res.p == pytest.approx(ref.pvalue, abs=1e-12)


def test_wilcoxon_with_ties_is_the_exact_sign_flip_test():
    """Tied |d|: scipy's exact sign-flip permutation test of W+ (all 2^12 patterns)."""
    d = np.array([0.1, -0.1, 0.2, 0.3, 0.3, -0.3, 0.5, 0.6, 0.6, 0.8, -0.2, 0.9])
    ranks = ss.rankdata(np.abs(d))
    ref = ss.permutation_test((d,), lambda a, axis=-1: np.sum(ranks * (a > 0), axis=axis),
                              permutation_type="samples", n_resamples=np.inf, vectorized=True)
    res = st.wilcoxon(d)
    assert res.exact and res.p == pytest.approx(ref.pvalue, abs=1e-12)
    assert res.p == pytest.approx(ss.wilcoxon(d).pvalue, abs=1e-12)  # scipy's default on ties


def test_wilcoxon_drops_zeros_and_extremes():
    d = [0.0, 0.5, 0.2, 0.0, 0.9, 0.4, 0.3, 0.7, 0.1, 0.6]  # 8 non-zero, all positive
    res = st.wilcoxon(d)
    assert res.n == 8 and res.statistic == 0 and res.p == pytest.approx(2 / 2 ** 8)
    assert res.p == pytest.approx(ss.wilcoxon(d, zero_method="wilcox", method="exact").pvalue)
    assert math.isnan(st.wilcoxon([0.0, 0.0]).p)


def test_cluster_bootstrap_with_one_point_per_group_is_scipys_bootstrap():
    d = np.random.default_rng(4).normal(size=12)
    ref = ss.bootstrap((d,), np.mean, method="percentile", n_resamples=3000,
                       random_state=np.random.default_rng(5)).confidence_interval
    assert st.cluster_bootstrap_ci(d, range(12), resamples=3000, seed=5) == pytest.approx((ref.low, ref.high),
                                                                                           abs=1e-12)


def test_cluster_bootstrap_draws_whole_groups():
    """Groups of 1, 2 and 3 points; each resample's mean recomputed by a loop over its drawn groups."""
    d = np.array([1.0, 2.0, 4.0, 10.0, 20.0, 30.0])
    groups = ["a", "b", "b", "c", "c", "c"]
    members = {"a": [1.0], "b": [2.0, 4.0], "c": [10.0, 20.0, 30.0]}
    idx = np.random.default_rng(7).integers(0, 3, (500, 3))
    means = [np.mean([v for k in row for v in members["abc"[k]]]) for row in idx]
    want = (np.percentile(means, 2.5), np.percentile(means, 97.5))
    assert st.cluster_bootstrap_ci(d, groups, resamples=500, seed=7) == pytest.approx(want, abs=1e-12)
