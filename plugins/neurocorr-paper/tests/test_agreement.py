"""The cross-framework agreement rule, checked against the statistics module and scipy's Welch t."""

import math
import statistics

import pytest
from scipy import stats

from neurocorr_paper.agreement import agreement, compare_means, verdict_lines


def test_compare_means_against_statistics_and_welch():
    torch_runs, other = [0.90, 0.92, 0.94], [0.93, 0.95, 0.99]
    r = compare_means(torch_runs, other)
    assert r["torch_mean"] == pytest.approx(statistics.mean(torch_runs))
    assert r["sd"] == pytest.approx(statistics.stdev(other))
    assert r["diff"] == pytest.approx(statistics.mean(other) - statistics.mean(torch_runs))
    assert r["bound"] == pytest.approx(2 * max(statistics.stdev(torch_runs), statistics.stdev(other)))
    assert r["t"] == pytest.approx(stats.ttest_ind(other, torch_runs, equal_var=False).statistic)
    assert r["agrees"] is True  # diff 0.0367 <= 2 * 0.0306
    assert compare_means(torch_runs, [0.95, 0.96, 0.99])["agrees"] is False  # 0.0467 > 2 * 0.0208


def test_rule_boundary_and_no_spread():
    assert compare_means([0.5, 0.7], [0.7, 0.9])["agrees"] is True  # diff 0.2 <= 2 * 0.1414
    assert compare_means([0.5, 0.6], [0.9, 1.0])["agrees"] is False  # diff 0.4 > 2 * 0.0707
    assert compare_means([0.5, 0.7], [0.8, 1.0])["agrees"] is False  # diff 0.3 > 2 * 0.1414
    one = compare_means([0.5], [0.9])
    assert one["agrees"] is None and math.isnan(one["bound"]) and math.isnan(one["t"])


def test_agreement_rows_and_verdicts():
    records = []
    for seed, (t, k, j) in enumerate([(0.90, 0.91, 0.60), (0.92, 0.93, 0.61), (0.94, 0.92, 0.62)]):
        for fw, score in (("torch", t), ("keras", k), ("jax", j)):
            records.append({"seed": seed, "framework": fw, "model": "net1", "score_paper": score,
                            "score_large": score, "accuracy": 0.9, "attacked": 0.5 + 0.01 * seed})
    rows = agreement(records, ["torch", "keras", "jax"], ["net1"])
    assert [(r["framework"], r["measure"]) for r in rows][:2] == [("keras", "score_paper"), ("keras", "score_large")]
    verdict = {(r["framework"], r["measure"]): r["agrees"] for r in rows}
    assert verdict[("keras", "score_paper")] is True and verdict[("jax", "score_paper")] is False
    assert verdict[("jax", "accuracy")] is True  # identical, zero spread: difference 0 <= 0
    lines = verdict_lines(rows)
    assert lines[0].startswith("keras agrees with torch within the seed-to-seed spread: ")
    assert "FC->CNN score (paper probe) 0/1 (outside: net1)" in lines[1]
    assert agreement(records, ["keras", "jax"], ["net1"]) == []  # no torch run to compare with
