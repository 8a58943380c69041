"""The zoo's leave-one-architecture-out test of the atlas's estimators, checked by hand."""

import json

import numpy as np
import pytest
from scipy import stats as ss

from neurocorr_atlas.estimators import weighted_mean
from neurocorr_paper import stats, zoo_atlas


def _rec(i: str, arch: str, seed: int, acc: float, noise: float = 0.0, frac: float = 1.0) -> dict:
    return {"id": i, "arch": arch, "seed": seed, "accuracy": acc, "attacked": acc / 2, "noise": noise,
            "train_frac": frac}


RECORDS = [_rec("a0@1", "a", 0, .50), _rec("a0@2", "a", 0, .70), _rec("a1@2", "a", 1, .72),
           _rec("an@2", "a", 0, .40, noise=.5), _rec("b0@1", "b", 0, .60), _rec("b0@2", "b", 0, .80),
           _rec("b1@2", "b", 1, .85), _rec("c0@1", "c", 0, .30), _rec("c0@2", "c", 0, .65),
           _rec("cf@2", "c", 0, .55, frac=.25), _rec("d0@2", "d", 0, .90), _rec("d1@2", "d", 1, .88)]


def _scores(records: list[dict]) -> dict[str, dict[str, float]]:
    """A symmetric made-up score: high within an architecture, and between close accuracies."""
    out: dict[str, dict[str, float]] = {}
    for r in records:
        out[r["id"]] = {q["id"]: 0.5 + 0.3 * (r["arch"] == q["arch"]) - 0.5 * abs(r["accuracy"] - q["accuracy"])
                        for q in records if q["id"] != r["id"]}
    return out


def test_anchors_are_the_trusted_seed_0_checkpoints_and_the_references():
    anchors = zoo_atlas.pick_anchors(RECORDS, {"overall": "d1@2", "cnn": "d1@2", "mlp": "b0@2"})
    assert anchors == ["a0@1", "a0@2", "b0@1", "b0@2", "c0@1", "c0@2", "d0@2", "d1@2"]  # no noise, no fraction


def test_anchor_scores_reuse_known_scores_measure_each_pair_once_and_resume(tmp_path):
    anchors = ["a0@1", "b0@2", "d1@2"]
    truth = _scores(RECORDS)
    calls: list[tuple[str, str]] = []

    def measure(model: str, todo):
        calls.extend((model, a) for a in todo)
        return {a: truth[model][a] for a in todo}

    known = {"d1@2": {r["id"]: truth[r["id"]].get("d1@2", 1.0) for r in RECORDS}}
    scores, computed = zoo_atlas.anchor_scores(RECORDS, anchors, measure, tmp_path, "probe9", known, lambda _t: None)
    assert all(a != "d1@2" for _m, a in calls)  # the zoo's reference: already measured
    assert ("b0@2", "a0@1") not in calls and ("a0@1", "b0@2") in calls  # an anchor pair once
    # 12 models x 2 anchors to measure, less 2 self-pairs, the anchor pair's second direction, and the
    # reference's row, which reads its score with each anchor from that anchor's row
    assert computed == len(calls) == 2 * len(RECORDS) - 2 - 1 - 2
    assert not any(m == "d1@2" for m, _a in calls)
    for r in RECORDS:
        assert scores[r["id"]] == {a: truth[r["id"]][a] for a in anchors if a != r["id"]}
    # a second run reads every row back; a lost row is measured again, alone
    (tmp_path / "c0@2__anchors__probe9.json").unlink()
    calls.clear()
    again, computed = zoo_atlas.anchor_scores(RECORDS, anchors, measure, tmp_path, "probe9", known, lambda _t: None)
    assert calls == [("c0@2", "a0@1"), ("c0@2", "b0@2")] and computed == 2 and again == scores
    assert json.loads((tmp_path / "c0@2__anchors__probe9.json").read_text()) == scores["c0@2"]


def test_folds_leave_the_architecture_out_of_the_atlas_and_the_baseline():
    anchors = zoo_atlas.pick_anchors(RECORDS, {"overall": "d0@2", "mlp": "b0@2"})
    scores = _scores(RECORDS)
    preds = zoo_atlas.predict_folds(RECORDS, scores, anchors, ["accuracy", "attacked"], exclude="d0@2")
    assert {p["id"] for p in preds} == {r["id"] for r in RECORDS} - {"d0@2"}
    for p in preds:
        arch = p["arch"]
        refs = [a for a in anchors if a[0] != arch]  # the ids start with their architecture
        assert p["references"] == len(refs)
        y = np.array([next(r[p["target"]] for r in RECORDS if r["id"] == a) for a in refs])
        train = [r[p["target"]] for r in RECORDS if r["arch"] != arch and r["id"] != "d0@2"]
        assert p["mean_training"] == pytest.approx(np.mean(train), abs=1e-12)
        assert p["mean_atlas"] == pytest.approx(y.mean(), abs=1e-12)
        s = np.array([scores[p["id"]][a] for a in refs])
        assert p["weighted"] == pytest.approx(weighted_mean(s, y, p["tau"]), abs=1e-12)
        # linear: the line of y on the score with the best reference, over the others, clipped
        best = int(np.argmax(y))
        others = [j for j in range(len(refs)) if j != best]
        slope, intercept = np.polyfit([scores[refs[j]][refs[best]] for j in others], y[others], 1)
        want = min(y.max(), max(y.min(), intercept + slope * s[best]))
        assert p["line_anchor"] == refs[best] and p["linear"] == pytest.approx(want, abs=1e-9)


def test_error_comparison_against_the_zoo_line_baseline_and_scipy():
    anchors = zoo_atlas.pick_anchors(RECORDS, {"overall": "d0@2"})
    preds = zoo_atlas.predict_folds(RECORDS, _scores(RECORDS), anchors, ["accuracy"])
    summary = zoo_atlas.compare_errors(preds, ["accuracy"], resamples=500)
    assert [(r["estimator"], r["baseline"]) for r in summary] == [
        (e, b) for e in zoo_atlas.ESTIMATORS for b in zoo_atlas.BASELINES]
    # the mean-of-training baseline is the zoo's line-vs-mean column's baseline (two paths, one number)
    logo = stats.logo_error([r["accuracy"] for r in RECORDS], [r["accuracy"] for r in RECORDS],
                            [r["arch"] for r in RECORDS])
    for r in summary:
        archs = list(dict.fromkeys(p["arch"] for p in preds))
        per = {a: [p for p in preds if p["arch"] == a] for a in archs}
        mae = [np.mean([abs(p[r["estimator"]] - p["measured"]) for p in per[a]]) for a in archs]
        base = [np.mean([abs(p[r["baseline"]] - p["measured"]) for p in per[a]]) for a in archs]
        d = np.array(mae) - np.array(base)
        assert r["mae"] == pytest.approx(np.mean(mae)) and r["mae_baseline"] == pytest.approx(np.mean(base))
        assert r["difference"] == pytest.approx(d.mean()) and r["wins"] == int(np.sum(d < 0))
        assert r["difference_low"] <= r["difference"] <= r["difference_high"]
        assert r["p_architectures"] == pytest.approx(ss.wilcoxon(d, method="exact").pvalue, abs=1e-12)
        err = [abs(p[r["estimator"]] - p["measured"]) - abs(p[r["baseline"]] - p["measured"]) for p in preds]
        assert r["p_models"] == pytest.approx(ss.wilcoxon(err).pvalue, abs=1e-12)
        if r["baseline"] == "mean_training":
            assert r["mae_baseline"] == pytest.approx(logo.mae_mean, abs=1e-12)
    assert "| accuracy | weighted | mean_training |" in "\n".join(zoo_atlas.markdown(summary, anchors, 7))
