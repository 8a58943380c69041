"""Predicting quality from the atlas: the estimators against naive formulas and scipy, the
leave-one-out interval, predict() end to end, and the CLI (atlas, grid, predict, cache)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from scipy import stats

from neurocorr_atlas.estimators import (
    TEMPERATURES,
    baseline_leave_one_out,
    estimate,
    fit_linear,
    fit_weighted,
    half_width,
    leave_one_out,
    weighted_mean,
)
from neurocorr_atlas.fill import add_model
from neurocorr_atlas.predict import evaluate, predict
from neurocorr_atlas.store import Atlas
from neurocorr_core import NeurocorrError, compare
from neurocorr_core import plugins as plugins_module
from neurocorr_core.cli import main

NAMES = ["mlp_a", "mlp_b", "mlp_c", "cnn_a", "cnn_b"]
ACCURACY = [0.90, 0.91, 0.89, 0.97, 0.98]


def symmetric(rng, n):
    s = rng.uniform(0.2, 0.9, (n, n))
    s = (s + s.T) / 2
    np.fill_diagonal(s, np.nan)
    return s


# -- estimators -----------------------------------------------------------------------------------------
def test_weighted_mean_is_the_softmax_weighted_average():
    s, y, tau = np.array([0.5, 0.7, 0.6]), np.array([0.8, 0.9, 1.0]), 0.1
    w = [math.exp(v / tau) for v in s]
    assert weighted_mean(s, y, tau) == pytest.approx(sum(a * b for a, b in zip(w, y, strict=True)) / sum(w))
    assert weighted_mean(np.array([900.0, 0.0]), np.array([1.0, 0.0]), 0.001) == 1.0  # no overflow


def test_weighted_tau_minimises_the_leave_one_out_error():
    rng = np.random.default_rng(1)
    s, y = symmetric(rng, 7), rng.uniform(0.8, 1.0, 7)
    errors = {}
    for tau in TEMPERATURES:  # brute force, written out
        total = 0.0
        for j in range(7):
            others = [k for k in range(7) if k != j]
            w = np.array([math.exp((s[j, k] - max(s[j, others])) / tau) for k in others])
            total += abs(y[j] - float(w @ y[others]) / w.sum())
        errors[tau] = total / 7
    best = min(errors.values())
    expected = max(t for t, e in errors.items() if e <= best + 1e-15)
    fitted = fit_weighted(s, y)
    assert fitted.params == {"tau": expected}
    new = rng.uniform(0.2, 0.9, 7)
    assert fitted.predict(new) == pytest.approx(weighted_mean(new, y, expected))


def test_linear_is_scipy_linregress_on_the_best_reference():
    rng = np.random.default_rng(2)
    s, y = symmetric(rng, 6), rng.uniform(0.8, 1.0, 6)
    anchor = int(np.argmax(y))
    others = [k for k in range(6) if k != anchor]
    fit = stats.linregress(s[others, anchor], y[others])
    fitted = fit_linear(s, y, [f"m{i}" for i in range(6)])
    assert fitted.params["anchor"] == f"m{anchor}"
    assert fitted.params["slope"] == pytest.approx(fit.slope) and fitted.params["intercept"] == pytest.approx(
        fit.intercept)
    new = rng.uniform(0.2, 0.9, 6)
    line = fit.intercept + fit.slope * new[anchor]
    assert fitted.predict(new) == pytest.approx(min(max(line, y.min()), y.max()))  # no extrapolation
    for far in (-50.0, 50.0):
        new[anchor] = far
        assert fitted.predict(new) in (pytest.approx(y.min()), pytest.approx(y.max()))


def test_leave_one_out_refits_without_the_held_out_reference():
    rng = np.random.default_rng(3)
    s, y = symmetric(rng, 6), rng.uniform(0.8, 1.0, 6)
    loo = leave_one_out(s, y, "linear")
    for j in range(6):
        keep = [k for k in range(6) if k != j]
        anchor = keep[int(np.argmax(y[keep]))]
        rest = [k for k in keep if k != anchor]
        fit = stats.linregress(s[rest, anchor], y[rest])
        line = fit.intercept + fit.slope * s[j, anchor]
        assert loo[j] == pytest.approx(min(max(line, y[keep].min()), y[keep].max()))
    np.testing.assert_allclose(baseline_leave_one_out(y), [np.mean(np.delete(y, j)) for j in range(6)])


def test_half_width_is_the_conformal_rank_of_the_residuals():
    residuals = np.array([0.5, -0.1, 0.3, -0.9, 0.2, 0.7, -0.4, 0.6, 0.8])  # n = 9
    assert half_width(residuals, 0.9) == 0.9  # rank ceil(10 * 0.9) = 9: the largest |r|
    assert half_width(residuals, 0.5) == 0.5  # rank 5 of 0.1 0.2 0.3 0.4 0.5 ...
    assert math.isinf(half_width(residuals[:5], 0.9))  # rank 6 > 5: unbounded


def test_estimate_follows_the_most_similar_family_and_beats_the_mean():
    # two families: references alike within a family have alike accuracy
    family = np.array([0, 0, 0, 1, 1, 1])
    y = np.where(family == 0, 0.90, 0.98) + np.array([0.002, -0.001, 0.0, 0.001, -0.002, 0.0])
    noise = 0.01 * np.random.default_rng(4).random((6, 6))
    s = np.where(family[:, None] == family[None, :], 0.8, 0.3) + noise
    s = (s + s.T) / 2
    new = np.where(family == 1, 0.8, 0.3)
    p = estimate(s, y, new, measure="accuracy", names=list("abcdef"), level=0.5)
    assert p.value == pytest.approx(0.98, abs=0.005)
    assert p.loo_mae < p.baseline_mae / 5 and p.baseline == pytest.approx(np.mean(y))
    assert p.low is not None and p.low <= p.value <= p.high
    assert [n for n, _ in p.nearest] == ["d", "e", "f"]


@pytest.mark.parametrize("kwargs, message", [({"estimator": "magic"}, "unknown estimator 'magic'"),
                                             ({"level": 1.0}, "level must lie in \\(0, 1\\)")])
def test_estimate_errors(kwargs, message):
    s = symmetric(np.random.default_rng(0), 4)
    with pytest.raises(NeurocorrError, match=message):
        estimate(s, np.ones(4), np.ones(4), measure="accuracy", names=list("abcd"), **kwargs)
    with pytest.raises(NeurocorrError, match="needs at least 3 references that have it; the atlas has 2"):
        estimate(s[:2, :2], np.ones(2), np.ones(2), measure="accuracy", names=list("ab"))


# -- predict() over an atlas --------------------------------------------------------------------------------
@pytest.fixture
def probe():
    return np.random.default_rng(6).normal(size=(24, 1, 8, 8)).astype(np.float32)


@pytest.fixture
def atlas(tmp_path, pm):
    with Atlas(tmp_path / "atlas.db", create=True) as at:
        for name, acc in zip(NAMES, ACCURACY, strict=True):
            measures = {"accuracy": acc, **({"attacked_accuracy": acc - 0.2} if name != "mlp_c" else {})}
            add_model(at, f"grid_models:{name}", name, measurements=measures, plugin_manager=pm)
        yield at


def test_predict_compares_with_every_reference_and_fills_the_grid(atlas, pm, probe):
    report = predict("grid_models:mlp_d", atlas, probe, level=0.5, plugin_manager=pm)
    assert report.computed == 10 + 5  # the reference grid, then the new model against each reference
    direct = compare("grid_models:mlp_d", "grid_models:cnn_a", probe, plugin_manager=pm)
    assert report.scores["cnn_a"] == pytest.approx(direct.score.symmetric, abs=1e-6)  # through the grid
    by = {p.measure: p for p in report.predictions}
    assert set(by) == {"accuracy", "attacked_accuracy"}
    assert by["accuracy"].references == 5 and by["attacked_accuracy"].references == 4
    # the value is the estimator applied to the atlas's scores: recompute it from them
    key = report.config
    scores = atlas.symmetric(key, NAMES)
    new = np.array([report.scores[n] for n in NAMES])
    assert by["accuracy"].value == pytest.approx(fit_weighted(scores, np.array(ACCURACY)).predict(new))
    again = predict("grid_models:mlp_d", atlas, probe, estimator="linear", plugin_manager=pm)
    assert again.computed == 5 and again.predictions[0].estimator == "linear"


def test_predict_errors(atlas, pm, probe, tmp_path):
    with pytest.raises(NeurocorrError, match="the new model's name 'mlp_a' is a reference's name"):
        predict("grid_models:mlp_d", atlas, probe, name="mlp_a", plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="no reference has the measurement 'speed'; measurements in the "
                                             "atlas: accuracy, attacked_accuracy"):
        predict("grid_models:mlp_d", atlas, probe, measures=["speed"], plugin_manager=pm)
    with Atlas(tmp_path / "small.db", create=True) as small:
        add_model(small, "grid_models:mlp_a", "a", measurements={"accuracy": 0.9}, plugin_manager=pm)
        add_model(small, "grid_models:mlp_b", "b", measurements={"accuracy": 0.8}, plugin_manager=pm)
        with pytest.raises(NeurocorrError, match="no measurement that 3 or more references share"):
            predict("grid_models:mlp_d", small, probe, plugin_manager=pm)


def test_evaluate_reports_estimators_beside_the_baseline(atlas, pm, probe):
    results = evaluate(atlas, probe, plugin_manager=pm)
    assert [(r.measure, r.estimator) for r in results] == [("accuracy", "weighted"), ("accuracy", "linear"),
                                                           ("attacked_accuracy", "weighted"),
                                                           ("attacked_accuracy", "linear")]
    first = results[0]
    assert first.names == NAMES and first.measured == pytest.approx(ACCURACY)
    assert first.baseline_mae == pytest.approx(np.mean(np.abs(np.array(ACCURACY) - baseline_leave_one_out(
        np.array(ACCURACY)))))
    assert first.mae == pytest.approx(np.mean(np.abs(np.array(first.measured) - np.array(first.predicted))))


# -- the command line ----------------------------------------------------------------------------------
@pytest.fixture
def cli(pm, monkeypatch, tmp_path, probe):
    monkeypatch.setattr(plugins_module, "_default", pm)
    monkeypatch.setenv("NEUROCORR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "probe.npy", probe)
    return tmp_path


def test_cli_atlas_grid_predict_and_cache(cli, capsys):
    for name, acc in zip(NAMES, ACCURACY, strict=True):
        assert main(["atlas", "add", f"grid_models:{name}", "--accuracy", str(acc),
                     "--attacked-accuracy", str(acc - 0.3), "--measure", "robustness=0.5"]) == 0
    added = "added cnn_b (numpy-test; accuracy 0.98, attacked_accuracy 0.68, robustness 0.5)"
    assert added in capsys.readouterr().out
    assert main(["atlas", "add", "grid_models:mlp_d", "--name", "mlp_a", "--accuracy", "0.5"]) == 2
    assert "already has a model named 'mlp_a'" in capsys.readouterr().err
    assert main(["grid", "--probe", "probe.npy", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "10 pair(s) computed" in out and "0 already stored" in out
    assert main(["grid", "--probe", "probe.npy"]) == 0
    assert "0 pair(s) computed" in capsys.readouterr().out
    assert main(["atlas", "ls"]) == 0
    out = capsys.readouterr().out
    assert "5 model(s)" in out and "10 pair(s) on probe.npy (24 samples)" in out
    assert main(["predict", "grid_models:mlp_d", "--probe", "probe.npy", "--json", "p.json"]) == 0
    out = capsys.readouterr().out
    assert "accuracy: " in out and "leave-one-out MAE" in out and "robustness" not in out.split("accuracy")[0]
    data = json.loads((cli / "p.json").read_text())
    assert {p["measure"] for p in data["predictions"]} == {"accuracy", "attacked_accuracy", "robustness"}
    assert main(["predict", "--leave-one-out", "--probe", "probe.npy", "--measure", "accuracy"]) == 0
    assert "estimator weighted: MAE" in capsys.readouterr().out
    assert main(["cache", "ls"]) == 0
    out = capsys.readouterr().out
    assert "entries" in out and "mlp_d" in out
    assert main(["cache", "clear"]) == 0
    assert "removed" in capsys.readouterr().out and not list((cli / "cache").rglob("*.act"))
    assert main(["atlas", "rm", "cnn_b"]) == 0 and "removed cnn_b" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["atlas", "ls", "--atlas", "none.db"], "no atlas at none.db"),
    (["atlas", "add", "grid_models:mlp_a", "--measure", "speed"], "write NAME=VALUE"),
    (["predict", "--probe", "probe.npy"], "give the new model .* or --leave-one-out"),
    (["grid", "--probe", "probe.npy", "--atlas", "none.db"], "no atlas at none.db"),
    (["grid", "--probe", "probe.npy", "--executor", "local", "--workers", "2"], "add --executor dask"),
])
def test_cli_errors(cli, capsys, args, message):
    assert main(args) == 2
    assert re.search(message, capsys.readouterr().err)


def test_cli_grid_of_one_model(cli, capsys):
    assert main(["atlas", "add", "grid_models:mlp_a", "--accuracy", "0.9"]) == 0
    assert main(["grid", "--probe", "probe.npy"]) == 2
    assert "a grid needs at least 2 models; the atlas atlas.db has 1" in capsys.readouterr().err
