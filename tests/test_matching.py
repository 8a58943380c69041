"""Matching strategies against independent references: hungarian against a brute-force search
over assignments and scipy's linear_sum_assignment optimum, mutual against a brute-force
search for mutual best pairs; through compare() against scipy.stats.pearsonr loops; and the
network score of a layer-level metric against the formula written out by hand."""

import itertools
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import linear_sum_assignment

from neurocorr_core import Metric, NeurocorrError, compare, hookimpl
from neurocorr_core.interfaces import Candidates
from neurocorr_core.matching import HungarianMatching, MaxMatching, MutualMatching
from numpy_models import mlp


def brute_force_assignment(scores):
    """The best total over every one-to-one assignment of min(rows, cols) pairs."""
    rows, cols = scores.shape
    best = -np.inf
    if rows <= cols:
        for perm in itertools.permutations(range(cols), rows):
            best = max(best, sum(scores[i, j] for i, j in enumerate(perm)))
    else:
        for perm in itertools.permutations(range(rows), cols):
            best = max(best, sum(scores[i, j] for j, i in enumerate(perm)))
    return best


def brute_force_mutual(scores):
    """Every (i, j) whose score is the largest of its row and of its column, by loops."""
    pairs = set()
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            v = scores[i, j]
            if all(v >= scores[i, k] for k in range(scores.shape[1])) and \
                    all(v >= scores[k, j] for k in range(scores.shape[0])):
                pairs.add((i, j))
    return pairs


def all_entries(scores):
    rows, cols = np.indices(scores.shape)
    return Candidates(rows.ravel(), cols.ravel(), scores.ravel().astype(float), scores.shape)


@pytest.mark.parametrize("shape", [(5, 5), (4, 7), (7, 4), (1, 6), (6, 1)])
def test_hungarian_equals_brute_force(shape):
    scores = np.random.default_rng(sum(shape)).random(shape)
    match = HungarianMatching().match(scores)
    assert match.score.sum() == pytest.approx(brute_force_assignment(scores), abs=1e-12)
    matched = match.partner[match.partner >= 0]
    assert len(matched) == min(shape) and len(set(matched.tolist())) == len(matched)  # one-to-one
    assert np.all(match.score[match.partner < 0] == 0)  # unmatched rows score 0
    got = HungarianMatching().match_candidates(all_entries(scores))
    assert got.score.sum() == pytest.approx(brute_force_assignment(scores), abs=1e-12)


@pytest.mark.parametrize("shape", [(40, 60), (60, 40), (50, 50)])
def test_hungarian_equals_linear_sum_assignment_optimum(shape):
    scores = np.random.default_rng(1).random(shape)
    r, c = linear_sum_assignment(scores, maximize=True)
    optimum = scores[r, c].sum()
    assert HungarianMatching().match(scores).score.sum() == pytest.approx(optimum, abs=1e-9)
    assert HungarianMatching().match_candidates(all_entries(scores)).score.sum() == pytest.approx(optimum, abs=1e-9)
    # fewer candidates can only lose: every row keeps its 3 best columns, every column its 3 best rows
    keep = np.zeros(shape, dtype=bool)
    np.put_along_axis(keep, np.argsort(-scores, axis=1)[:, :3], True, axis=1)
    np.put_along_axis(keep, np.argsort(-scores, axis=0)[:3], True, axis=0)
    rows, cols = np.nonzero(keep)
    sparse = HungarianMatching().match_candidates(Candidates(rows, cols, scores[rows, cols], shape))
    assert sparse.score.sum() <= optimum + 1e-9
    assert sparse.score.sum() >= 0.95 * optimum


def test_hungarian_never_beats_max_and_is_one_to_one():
    scores = np.random.default_rng(2).random((30, 20))
    h, m = HungarianMatching().match(scores), MaxMatching().match(scores)
    assert h.score.mean() <= m.score.mean()
    assert (h.partner >= 0).sum() == 20


def test_hungarian_on_nan_names_rows_and_columns():
    scores = np.random.default_rng(3).random((5, 6))
    scores[2, :] = np.nan
    scores[:, 4] = np.nan
    with pytest.raises(NeurocorrError, match=r"NaN scores at rows \[0, 1, 2, 3, 4\] \(5\) and columns "
                                             r"\[0, 1, 2, 3, 4, 5\] \(6\).*constant \(dead\) neuron"):
        HungarianMatching().match(scores)
    with pytest.raises(NeurocorrError, match="hungarian top_k must be at least 1"):
        HungarianMatching(top_k=0)


@pytest.mark.parametrize("shape", [(12, 12), (8, 15), (15, 8)])
def test_mutual_equals_brute_force(shape):
    scores = np.random.default_rng(shape[0] * shape[1]).random(shape)
    want = brute_force_mutual(scores)
    for match in (MutualMatching().match(scores), MutualMatching().match_candidates(all_entries(scores))):
        got = {(i, int(j)) for i, j in enumerate(match.partner) if j >= 0}
        assert got == want
        for i, j in enumerate(match.partner):
            assert match.score[i] == (scores[i, j] if j >= 0 else 0.0)


def test_max_candidates_equal_argmax_with_ties():
    scores = np.array([[0.5, 0.9, 0.9], [0.0, 0.0, 0.0], [0.3, 0.1, 0.3]])
    full, cand = MaxMatching().match(scores), MaxMatching().match_candidates(all_entries(scores))
    assert full.partner.tolist() == cand.partner.tolist() == [1, 0, 0]  # lowest index on ties
    np.testing.assert_array_equal(full.score, cand.score)


# -- through compare(), against pearsonr loops ------------------------------------------------
def naive_scores(net_a, net_b, probe, penalty):
    """|r| / (|d_i - d_j| + 1) by scipy.stats.pearsonr over every pair, NaN as 0."""
    def columns(net):
        x, cols, depth = probe.astype(np.float64), [], []
        for name, _, fn in net.steps:
            x = fn(x)
            if name.startswith("act"):
                out = x.astype(np.float32).astype(np.float64)
                cols += list(out.T)
                depth += [int(name[3:])] * out.shape[1]
        return cols, depth

    (ca, da), (cb, db) = columns(net_a), columns(net_b)
    out = np.zeros((len(ca), len(cb)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: scipy warns and returns nan
        for i, a in enumerate(ca):
            for j, b in enumerate(cb):
                r = stats.pearsonr(a, b)[0]
                out[i, j] = 0.0 if np.isnan(r) else abs(r)
                if penalty == "paper":
                    out[i, j] /= abs(da[i] - db[j]) + 1
    return out


@pytest.fixture
def nets():
    probe = np.random.default_rng(11).normal(size=(40, 16)).astype(np.float32)
    return mlp(21, [9, 7]), mlp(22, [6, 8, 5]), probe


@pytest.mark.parametrize("penalty", ["paper", "none"])
def test_compare_mutual_is_brute_force(pm, nets, penalty):
    net_a, net_b, probe = nets
    ref = naive_scores(net_a, net_b, probe, penalty)
    pairs = brute_force_mutual(ref)
    result = compare(net_a, net_b, probe, matching="mutual", depth_penalty=penalty, plugin_manager=pm)
    assert {(i, int(j)) for i, j in enumerate(result.partner_a) if j >= 0} == pairs
    assert {(int(i), j) for j, i in enumerate(result.partner_b) if i >= 0} == pairs
    assert result.score.a_to_b == pytest.approx(sum(ref[i, j] for i, j in pairs) / ref.shape[0], abs=1e-6)
    assert result.score.b_to_a == pytest.approx(sum(ref[i, j] for i, j in pairs) / ref.shape[1], abs=1e-6)
    assert result.matched_fraction == pytest.approx({"a_to_b": len(pairs) / 16, "b_to_a": len(pairs) / 19})


@pytest.mark.parametrize("penalty", ["paper", "none"])
def test_compare_hungarian_is_the_optimum(pm, nets, penalty):
    net_a, net_b, probe = nets
    ref = naive_scores(net_a, net_b, probe, penalty)
    r, c = linear_sum_assignment(ref, maximize=True)
    result = compare(net_a, net_b, probe, matching="hungarian", depth_penalty=penalty,
                     constant_neurons="zero", plugin_manager=pm)  # B has dead neurons: they score 0
    assert result.score.a_to_b == pytest.approx(ref[r, c].sum() / ref.shape[0], abs=1e-6)
    assert result.score.b_to_a == pytest.approx(ref[r, c].sum() / ref.shape[1], abs=1e-6)
    assert result.matched_fraction == {"a_to_b": 1.0, "b_to_a": 16 / 19}
    maximum = compare(net_a, net_b, probe, matching="max", depth_penalty=penalty, plugin_manager=pm)
    assert result.score.b_to_a < maximum.score.b_to_a


def test_hungarian_with_dead_neurons_names_them(pm):
    probe = np.random.default_rng(12).normal(size=(30, 16)).astype(np.float32)
    net_a, net_b = mlp(23, [8, 6], dead=2), mlp(24, [7])
    with pytest.raises(NeurocorrError, match=r"matching 'hungarian' needs a defined similarity.*2 neuron\(s\) "
                       r"are constant.*A: layer 'act0' neurons \[6, 7\] \(2 of 8\).*constant_neurons='zero'"):
        compare(net_a, net_b, probe, matching="hungarian", plugin_manager=pm)
    ok = compare(net_a, net_b, probe, matching="hungarian", constant_neurons="zero", plugin_manager=pm)
    assert ok.config["constant_neurons"] == "zero" and ok.dead_neurons["a"] == {"act0": 2, "act1": 0}
    with pytest.raises(NeurocorrError, match="constant_neurons must be 'zero' or 'error'"):
        compare(net_a, net_b, probe, constant_neurons="drop", plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="matching 'max' needs a defined similarity"):
        compare(net_a, net_b, probe, constant_neurons="error", plugin_manager=pm)


def test_unknown_metric_lists_available(pm, nets):
    net_a, net_b, probe = nets
    with pytest.raises(NeurocorrError, match=r"no metric named 'kendall'; available: .*pearson"):
        compare(net_a, net_b, probe, metric="kendall", plugin_manager=pm)


# -- a layer-level metric --------------------------------------------------------------------
class MeanAbsCorrelation(Metric):
    """Layer-level: the mean |r| over the neuron pairs of two layers (a test metric)."""

    name = "mean-abs-r"
    level = "layer"

    def __init__(self, sizes_a, sizes_b, **options):
        super().__init__(sizes_a, sizes_b, **options)
        self.x, self.y = [], []

    def update(self, x, y):
        self.x.append(x)
        self.y.append(y)

    def merge(self, other):
        self.x += other.x
        self.y += other.y

    def compute(self):
        x, y = np.concatenate(self.x).astype(float), np.concatenate(self.y).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):  # constant neurons: r is NaN, counted 0
            r = np.abs(np.nan_to_num(np.corrcoef(x.T, y.T)[:x.shape[1], x.shape[1]:]))
        ba, bb = np.cumsum([0, *self.sizes_a]), np.cumsum([0, *self.sizes_b])
        return np.array([[r[ba[i]:ba[i + 1], bb[j]:bb[j + 1]].mean() for j in range(len(self.sizes_b))]
                         for i in range(len(self.sizes_a))])

    def constant(self):
        x, y = np.concatenate(self.x), np.concatenate(self.y)
        return x.std(axis=0) == 0, y.std(axis=0) == 0

    @property
    def count(self):
        return sum(len(x) for x in self.x)


@hookimpl
def neurocorr_similarity_metrics():
    return [MeanAbsCorrelation]


@pytest.mark.parametrize("penalty", ["paper", "none"])
def test_layer_level_metric_score_is_the_formula_at_layer_granularity(pm, nets, penalty):
    import sys

    pm.register(sys.modules[__name__], "layer-test")
    net_a, net_b, probe = nets
    result = compare(net_a, net_b, probe, metric="mean-abs-r", depth_penalty=penalty, plugin_manager=pm)
    metric = MeanAbsCorrelation([9, 7], [6, 8, 5])
    metric.update(*_activations(net_a, net_b, probe))
    table = metric.compute()
    np.testing.assert_allclose(result.layer_table, table, atol=1e-12)
    np.testing.assert_allclose(result.layer_table_ba, table.T, atol=1e-12)
    div = lambda a, b: (abs(a - b) + 1) if penalty == "paper" else 1  # noqa: E731
    ab = np.mean([max(table[a, b] / div(a, b) for b in range(3)) for a in range(2)])
    ba = np.mean([max(table[a, b] / div(a, b) for a in range(2)) for b in range(3)])
    assert result.score.a_to_b == pytest.approx(ab, abs=1e-12)
    assert result.score.b_to_a == pytest.approx(ba, abs=1e-12)
    assert [lr.score for lr in result.layers_a] == pytest.approx(
        [max(table[a, b] / div(a, b) for b in range(3)) for a in range(2)])
    assert result.partner_a.tolist() == [int(np.argmax([table[a, b] / div(a, b) for b in range(3)])) for a in range(2)]
    hung = compare(net_a, net_b, probe, metric="mean-abs-r", matching="hungarian", depth_penalty=penalty,
                   constant_neurons="zero", plugin_manager=pm)
    pen = np.array([[table[a, b] / div(a, b) for b in range(3)] for a in range(2)])
    assert hung.score.a_to_b == pytest.approx(brute_force_assignment(pen) / 2, abs=1e-12)
    with pytest.raises(NeurocorrError, match="sample_neurons needs a neuron-level metric"):
        compare(net_a, net_b, probe, metric="mean-abs-r", sample_neurons=0.5, plugin_manager=pm)


def _activations(net_a, net_b, probe):
    def run(net):
        out = net.run(probe)
        return np.concatenate([out[n] for n, _, _ in net.steps if n.startswith("act")], axis=1)
    return run(net_a), run(net_b)
