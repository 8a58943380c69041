"""neurocorr reproduce zoo: its pieces checked by hand, and --quick runs end to end (slow)."""

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from neurocorr_core.cli import main as neurocorr
from neurocorr_core.datasets import FASHION_DIR, FASHION_ENV
from neurocorr_paper import zoo


def test_linear_cka_against_the_feature_space_formula():
    """Gram-matrix form against Kornblith et al.'s feature form ||Y'X||^2 / (||X'X|| ||Y'Y||)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 7))
    b = a @ rng.normal(size=(7, 12)) + 0.5 * rng.normal(size=(40, 12))
    ac, bc = a - a.mean(0), b - b.mean(0)
    want = np.linalg.norm(bc.T @ ac) ** 2 / (np.linalg.norm(ac.T @ ac) * np.linalg.norm(bc.T @ bc))
    assert zoo.linear_cka(a, b) == pytest.approx(want, abs=1e-12)
    assert zoo.linear_cka(a, a) == pytest.approx(1.0)
    q, _ = np.linalg.qr(rng.normal(size=(7, 7)))  # invariant to rotation and isotropic scaling
    assert zoo.linear_cka(a, 3 * a @ q) == pytest.approx(1.0)


def test_specs_are_unique_and_the_grid_is_large_enough():
    full = zoo.zoo_settings("fashion-mnist", quick=False)
    ids = [s.run_id for s in full.specs]
    assert len(ids) == len(set(ids))
    models = sum(len(s.checkpoints) for s in full.specs)
    assert models >= 150  # the size
    assert {s.family for s in full.specs} == {"mlp", "cnn"}
    assert any(s.noise for s in full.specs) and any(s.train_frac < 1 for s in full.specs)
    assert any(s.dropout for s in full.specs) and any(not s.dropout for s in full.specs)


def test_hidden_neurons_are_what_the_score_compares():
    spec = zoo.Spec("cnn", (4, 8), 0, (1,))
    model = zoo.build(spec, 28)
    x = torch.rand(5, 1, 28, 28)
    h = zoo._hidden(model, spec, x)
    assert h.shape == (5, 4 * 13 * 13 + 8 * 5 * 5)  # the paper's position view of both blocks
    mlp = zoo.Spec("mlp", (16, 8), 0, (1,))
    assert zoo._hidden(zoo.build(mlp, 28), mlp, x).shape == (5, 24)


def _run(dataset: str, out: Path) -> None:
    assert neurocorr(["reproduce", "zoo", "--dataset", dataset, "--quick", "--out", str(out), "--threads", "1"]) == 0


@pytest.mark.slow
def test_quick_digits_resumes_without_retraining(tmp_path, capsys):
    out = tmp_path / "zoo"
    _run("digits", out)
    first = capsys.readouterr().out
    assert "neurocorr reproduce zoo: digits, 28 models" in first
    weights = {p.name: p.stat().st_mtime_ns for p in (out / "models").glob("*.pt")}
    assert len(weights) == 28
    with open(out / "correlations.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(zoo.PREDICTORS) * len(zoo.TARGETS)
    for r in rows:
        assert -1 <= float(r["rho_low"]) <= float(r["rho"]) + 1e-9 and 0 < float(r["rho_p"]) <= 1
    doc = json.loads((out / "results.json").read_text())
    ref = doc["reference"]
    assert ref.startswith("cnn-")
    accs = {r["id"]: r["accuracy"] for r in doc["records"]}
    assert accs[ref] == max(a for i, a in accs.items() if i.startswith("cnn-") and "noise" not in i)
    assert (out / "scatter.png").read_bytes()[:4] == b"\x89PNG"
    tables = (out / "tables.md").read_text()
    assert "| score_ab |" in tables and "Against **drop**" in tables
    # a second run finds every model and predictor on disk: nothing is retrained
    _run("digits", out)
    second = capsys.readouterr().out
    assert "[1/14]" in second
    assert {p.name: p.stat().st_mtime_ns for p in (out / "models").glob("*.pt")} == weights
    assert json.loads((out / "results.json").read_text())["overall"] == doc["overall"]


@pytest.mark.slow
def test_quick_fashion_mnist(tmp_path, capsys):
    folder = Path(os.environ.get(FASHION_ENV, FASHION_DIR))
    if not (folder / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST not installed in {folder}: apt-get install dataset-fashion-mnist")
    _run("fashion-mnist", tmp_path / "zoo")
    text = capsys.readouterr().out
    assert "neurocorr reproduce zoo: fashion-mnist, 28 models" in text
    for predictor in zoo.PREDICTORS:
        assert predictor in text
    doc = json.loads((tmp_path / "zoo" / "results.json").read_text())
    accs = [r["accuracy"] for r in doc["records"]]
    assert max(accs) > 0.7 and min(accs) < max(accs) - 0.1  # accuracy varies across the zoo
