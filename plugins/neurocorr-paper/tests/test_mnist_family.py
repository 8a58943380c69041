"""End-to-end ``--quick`` runs: files written, the table complete, and only the qualitative
claims that held in every one of 8 quick digits seeds (net5 lowest by accuracy and score, the
attack lowering every model's accuracy by 0.22 or more)."""

import csv
import dataclasses
import json
import math
import os
from pathlib import Path

import pytest

from neurocorr_core.cli import main as neurocorr
from neurocorr_data.datasets import FASHION_DIR, FASHION_ENV
from neurocorr_paper.mnist_family import MODELS, PAIRS, QUICK_WARNING, render, summarise
from neurocorr_paper.settings import MLP_SHAPES

FILES = ["fc_pairs.csv", "probe_curve.csv", "rank_correlations.csv", "results.json", "score_vs_accuracy.png",
         "score_vs_attacked.png", "table.csv"]


def quick(dataset: str, seeds: int, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    argv = ["reproduce", "mnist-family", "--dataset", dataset, "--quick", "--seeds", str(seeds),
            "--out", str(out), "--quiet", "--threads", "1"]
    assert neurocorr(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == FILES  # and no temporary folder left behind
    return json.loads((out / "results.json").read_text()), capsys.readouterr().out


def check_complete(doc: dict, out: Path, seeds: int) -> None:
    with open(out / "table.csv") as f:
        table = list(csv.DictReader(f))
    assert [row["model"] for row in table] == MODELS
    for row in table:
        keys = ["accuracy_mean", "attack_clean_mean", "attacked_mean"]
        keys += ["score_paper_mean", "score_large_mean", "sym_paper_mean", "score_paper_untrained_mean",
                 "score_large_untrained_mean", "null_paper_mean", "null_large_mean"] if row["model"] != "cnn" else []
        keys += [k.replace("mean", "sd") for k in keys] if seeds > 1 else []
        for key in keys:
            assert 0.0 <= float(row[key]) <= 1.0, (row["model"], key, row[key])
    with open(out / "fc_pairs.csv") as f:
        assert [row["pair"] for row in csv.DictReader(f)] == PAIRS
    assert len(doc["per_seed"]) == seeds * len(MODELS)
    assert len(doc["rank_correlations"]) == 4 * 3 * 2  # trained/untrained x 2 probes; 3 targets; with/without net5
    assert all(len(r["per_seed"]) == seeds for r in doc["rank_correlations"])
    for r in doc["rank_correlations"]:  # exact p of n models: a multiple of 1/n!
        n = 5 if r["models"] == "all" else 4
        for p in r["per_seed_p"]:
            assert p is None or abs(p * math.factorial(n) - round(p * math.factorial(n))) < 1e-9
        assert r["pooled_exact"] and 0 < r["pooled_p"] <= 1
    with open(out / "probe_curve.csv") as f:
        curve = list(csv.DictReader(f))
    assert {row["model"] for row in curve} == set(MLP_SHAPES)
    for row in curve:
        assert 0 <= float(row["trained_mean"]) <= 1 and 0 <= float(row["untrained_mean"]) <= 1
    for name in ("score_vs_accuracy.png", "score_vs_attacked.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_quick_digits(tmp_path, capsys):
    doc, text = quick("digits", 2, tmp_path / "out", capsys)
    check_complete(doc, tmp_path / "out", 2)
    assert doc["sizes"] == {"train": 1348, "test": 449, "attack": 449, "paper_probe": 10, "large_probe": 449}
    for seed in (0, 1):
        rows = {r["model"]: r for r in doc["per_seed"] if r["seed"] == seed}
        mlps = {m: rows[m] for m in MLP_SHAPES}
        assert min(mlps, key=lambda m: mlps[m]["accuracy"]) == "net5"
        assert min(mlps, key=lambda m: mlps[m]["score_paper"]) == "net5"
        assert min(mlps, key=lambda m: mlps[m]["score_large"]) == "net5"
        for model, r in rows.items():  # the transfer attack lowers every model's accuracy
            assert r["attacked"] < r["attack_clean"] - 0.1, model
    assert doc["claims"]["torch"]["net5_lowest_accuracy"] == {"seeds": 2, "holds": 2}
    for line in ("net1", "net5", "cnn", "Spearman rho", "net1-net2", "wrote ", QUICK_WARNING,
                 "attack 'paper': one surrogate CNN trained further for 3 epochs"):
        assert line in text


@pytest.mark.slow
def test_quick_fashion_mnist(tmp_path, capsys):
    folder = Path(os.environ.get(FASHION_ENV, FASHION_DIR))
    if not (folder / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST not installed in {folder}: apt-get install dataset-fashion-mnist")
    doc, _ = quick("fashion-mnist", 1, tmp_path / "out", capsys)
    check_complete(doc, tmp_path / "out", 1)
    assert doc["sizes"]["train"] == 10000 and doc["sizes"]["test"] == 2000
    cnn = next(r for r in doc["per_seed"] if r["model"] == "cnn")
    assert cnn["accuracy"] > 0.7  # one epoch over 10,000 images; chance is 0.1
    assert cnn["attacked"] < cnn["attack_clean"]


def test_summary_and_files_from_hand_made_records():
    """summarise/render on records made up here: means, sds and rho checked by hand."""
    from neurocorr_paper.mnist_family import Run
    from neurocorr_paper.settings import FULL

    run = Run("mnist", FULL["mnist"], [0, 1], ["torch"], {"train": 8, "test": 4, "attack": 4,
                                                     "paper_probe": 2, "large_probe": 4})
    for seed in (0, 1):
        for k, model in enumerate(MODELS):
            score = math.nan if model == "cnn" else 0.5 + 0.1 * k + 0.01 * seed
            run.records.append({"seed": seed, "framework": "torch", "model": model, "hidden": [1],
                                "accuracy": 0.8 + 0.02 * k,
                                "attack_clean": 0.8, "attacked": 0.7 - 0.05 * k + 0.01 * seed,
                                "score_paper": score, "score_large": score, "sym_paper": score,
                                "sym_large": score, "dead_paper": 0, "dead_large": 0})
        run.pairs += [{"seed": seed, "framework": "torch", "pair": p, "a_to_b": 0.6, "b_to_a": 0.4, "symmetric": 0.5}
                      for p in PAIRS]
    summary = summarise(run)
    net3 = summary["table"][2]
    assert net3["score_paper_mean"] == pytest.approx(0.705)
    assert net3["score_paper_sd"] == pytest.approx(math.sqrt(2 * 0.005 ** 2))  # sample sd of 0.70, 0.71
    assert net3["paper_accuracy"] == .9595
    ranks = {(r["score"], r["against"]): r for r in summary["rank_correlations"] if r["models"] == "all"}
    assert ranks[("score_paper", "accuracy")]["per_seed"] == [pytest.approx(1.0)] * 2
    # exact: 2 of 120 orders reach |rho| = 1; pooled over 2 seeds: 2 of 120^2 reach mean rho = +-1
    assert ranks[("score_paper", "accuracy")]["per_seed_p"] == [pytest.approx(2 / 120)] * 2
    assert ranks[("score_paper", "accuracy")]["pooled_p"] == pytest.approx(2 / 120 ** 2)
    without = {(r["score"], r["against"]): r for r in summary["rank_correlations"] if r["models"] == "without net5"}
    assert without[("score_paper", "accuracy")]["per_seed_p"] == [pytest.approx(2 / 24)] * 2
    assert math.isnan(ranks[("score_paper_untrained", "accuracy")]["mean"])  # not in these records
    assert ranks[("score_paper", "attacked")]["mean"] == pytest.approx(-1.0)
    assert ranks[("score_paper", "drop")]["positive"] == 2
    assert summary["claims"]["torch"]["net5_lowest_accuracy"]["holds"] == 0
    assert summary["claims"]["torch"]["net5_lowest_attacked"]["holds"] == 2
    assert summary["agreement"] == []  # one framework: nothing to compare
    assert summary["fc_pairs"][0]["paper"] == .6442
    assert summary["fc_pairs"][0]["a_to_b_mean"] == 0.6 and summary["fc_pairs"][0]["symmetric_mean"] == 0.5
    files = render(run, summary)
    assert sorted(files) == FILES
    assert json.loads(files["results.json"])["table"][5]["score_paper_mean"] is None  # the CNN: NaN -> null


@pytest.mark.slow
def test_quick_digits_across_frameworks(tmp_path, capsys, monkeypatch):
    """torch, keras and jax MLPs against the same torch CNN: a framework column everywhere, one
    CNN per seed, and the agreement table and verdict lines. Fewer epochs and attack rounds
    than --quick, to keep the test short; the numbers are not checked, only that each
    framework's MLPs learned."""
    from neurocorr_paper.settings import QUICK

    monkeypatch.setitem(QUICK, "digits", dataclasses.replace(QUICK["digits"], mlp_epochs=20, cnn_epochs=3,
                                                              attack_rounds=2, refit_epochs=1))
    out = tmp_path / "out"
    assert neurocorr(["reproduce", "mnist-family", "--dataset", "digits", "--quick", "--seeds", "2", "--out",
                      str(out), "--quiet", "--threads", "1", "--mlp-framework", "torch,keras",
                      "--mlp-framework", "jax"]) == 0
    text = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, "agreement.csv"])
    with open(out / "table.csv") as f:
        table = list(csv.DictReader(f))
    frameworks = ["torch", "keras", "jax"]
    assert [(r["framework"], r["model"]) for r in table] == [
        *((fw, m) for fw in frameworks for m in MLP_SHAPES), ("torch", "cnn")]
    for row in table:
        assert float(row["score_paper_mean"] or 0) <= 1.0
        if row["model"] == "net1":
            assert float(row["accuracy_mean"]) > 0.8, row["framework"]  # chance: 0.1
    with open(out / "agreement.csv") as f:
        agreement = list(csv.DictReader(f))
    assert len(agreement) == 2 * 5 * 4 and {r["framework"] for r in agreement} == {"keras", "jax"}
    assert all(r["agrees"] in ("True", "False") for r in agreement)
    doc = json.loads((out / "results.json").read_text())
    assert doc["mlp_frameworks"] == frameworks
    assert sorted(r["framework"] for r in doc["per_seed"] if r["model"] == "cnn") == ["torch", "torch"]
    assert {p["framework"] for p in doc["fc_pairs_per_seed"]} == set(frameworks)
    assert "MLPs in torch, keras, jax (the CNN in torch)" in text
    assert "agreement: |mean_fw - mean_torch| <= 2 * max(sd_fw, sd_torch) over seeds" in text
    for fw in ("keras", "jax"):
        assert f"{fw} agrees with torch within the seed-to-seed spread: FC->CNN score (paper probe) " in text


def test_noise_probe_is_seeded_uniform_noise_of_the_test_shape():
    """--probe noise: the Fashion-MNIST notebooks' torch.rand(X_test.shape) probe."""
    import numpy as np
    import torch

    from neurocorr_paper.mnist_family import probe_images
    from neurocorr_paper.settings import FULL
    from neurocorr_torch.demo import Split

    x = torch.rand(30, 1, 8, 8)
    data = Split(x, torch.zeros(30, dtype=torch.long), x[:12], torch.zeros(12, dtype=torch.long))
    test = probe_images(data, FULL["digits"], 0)
    assert np.array_equal(test, x[:12].numpy())
    noise_settings = dataclasses.replace(FULL["digits"], probe="noise")
    noise = probe_images(data, noise_settings, 0)
    assert noise.shape == (12, 1, 8, 8) and noise.dtype == np.float32
    assert noise.min() >= 0 and noise.max() < 1 and abs(noise.mean() - 0.5) < 0.05
    assert np.array_equal(noise, probe_images(data, noise_settings, 0))  # seeded
    assert not np.array_equal(noise, probe_images(data, noise_settings, 1))
