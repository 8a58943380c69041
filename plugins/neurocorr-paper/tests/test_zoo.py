"""neurocorr reproduce zoo: its pieces checked by hand, and --quick runs end to end (slow)."""

import csv
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from neurocorr_core.cli import main as neurocorr
from neurocorr_data.datasets import FASHION_DIR, FASHION_ENV
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


def _relu_outputs(net: torch.nn.Sequential, x: torch.Tensor) -> list[np.ndarray]:
    """A zoo MLP's hidden ReLU outputs, layer by layer, from its weights."""
    h, out = x.flatten(1), []
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    for layer in linears[:-1]:
        h = torch.relu(h @ layer.weight.T + layer.bias)
        out.append(h.detach().double().numpy())
    return out


def _paper_ab(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """score(A->B) by hand: |np.corrcoef| / (depth difference + 1), best match, mean; constant 0."""
    xa, xb = np.concatenate(a, 1), np.concatenate(b, 1)
    da = np.concatenate([np.full(layer.shape[1], d) for d, layer in enumerate(a)])
    db = np.concatenate([np.full(layer.shape[1], d) for d, layer in enumerate(b)])
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(xa.T, xb.T)[: xa.shape[1], xa.shape[1]:]
    return float((np.nan_to_num(np.abs(r), nan=0.0) / (np.abs(da[:, None] - db[None, :]) + 1)).max(1).mean())


def test_predictors_on_10_100_and_the_whole_probe_against_numpy():
    spec, ref_spec = zoo.Spec("mlp", (12, 8), 0, (1,)), zoo.Spec("mlp", (16,), 1, (1,))
    model, ref = zoo.build(spec, 8), zoo.build(ref_spec, 8)
    probe = torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    values = zoo.predictors(model, spec, ref, ref_spec, probe, 8)
    assert set(values) == set(zoo.RELATIVE)
    for n, key in ((10, "score_ab_10"), (100, "score_ab_100"), (200, "score_ab")):
        want = _paper_ab(_relu_outputs(model, probe[:n]), _relu_outputs(ref, probe[:n]))
        assert values[key] == pytest.approx(want, abs=1e-5), key
    assert values["score_ab_10"] != pytest.approx(values["score_ab"], abs=1e-3)  # the sizes really differ
    assert values["untrained_ab"] == pytest.approx(values["score_ab"], abs=1e-6)  # build() is the initialisation


def test_references_are_the_most_accurate_trusted_models():
    def rec(i: str, family: str, acc: float, noise: float = 0.0, frac: float = 1.0) -> dict:
        return {"id": i, "family": family, "accuracy": acc, "noise": noise, "train_frac": frac}

    records = [rec("c1", "cnn", .80), rec("c2", "cnn", .95, noise=0.2), rec("c3", "cnn", .85),
               rec("m1", "mlp", .90), rec("m2", "mlp", .97, frac=0.25), rec("m3", "mlp", .84)]
    assert zoo.pick_references(records) == {"overall": "m1", "cnn": "c3", "mlp": "m1"}
    records.append(rec("c4", "cnn", .90))  # a tie goes to the larger id, whatever the order
    assert zoo.pick_references(records)["overall"] == "m1"
    with pytest.raises(ValueError, match="no trusted mlp"):
        zoo.pick_references([r for r in records if r["family"] == "cnn"])


def _tiny(tmp_path: Path) -> tuple:
    """Three short training runs on the digits (two MLPs, one CNN; four checkpoints)."""
    from neurocorr_paper.data import load_split
    from neurocorr_paper.settings import FULL

    data = load_split("digits", FULL["digits"])
    specs = (zoo.Spec("mlp", (16,), 0, (1, 2)), zoo.Spec("mlp", (8, 8), 1, (2,)), zoo.Spec("cnn", (2, 4), 0, (1,)))
    zs = dataclasses.replace(zoo.zoo_settings("digits", True), specs=specs)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    return data, zs, data.x_test[:50].numpy(), data.y_test[:50].numpy()


def _same(first: list[dict], second: list[dict], a: Path, b: Path) -> None:
    assert [r["id"] for r in first] == [r["id"] for r in second]
    for x, y in zip(first, second, strict=True):
        for key in ("accuracy", "attacked", "train_loss"):
            assert x[key] == pytest.approx(y[key], abs=1e-6)
        wa, wb = torch.load(a / f"{x['id']}.pt"), torch.load(b / f"{x['id']}.pt")
        assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_training_on_the_local_executor_equals_in_process_and_resumes_after_a_kill(tmp_path):
    from neurocorr_core.scale_out import get_executor

    data, zs, adversarial, labels = _tiny(tmp_path)
    quiet = lambda _t: None  # noqa: E731
    alone = zoo.train_all(zs.specs, data, zs, tmp_path / "a", adversarial, labels, progress=quiet)
    assert [r["id"] for r in alone] == ["mlp-16-s0@1", "mlp-16-s0@2", "mlp-8x8-s1@2", "cnn-2x4-s0@1"]
    with get_executor("local") as executor:
        tasks = zoo.train_all(zs.specs, data, zs, tmp_path / "b", adversarial, labels, executor=executor,
                              progress=quiet)
    _same(alone, tasks, tmp_path / "a", tmp_path / "b")
    # a kill before run mlp-8x8-s1 wrote its record: a re-run trains that run alone
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "b").iterdir()}
    (tmp_path / "b" / "mlp-8x8-s1@2.json").unlink()
    lines: list[str] = []
    with get_executor("local") as executor:
        again = zoo.train_all(zs.specs, data, zs, tmp_path / "b", adversarial, labels, executor=executor,
                              progress=lines.append)
    assert lines[0].startswith("training runs: 2 of 3 found") and lines[1:] == ["[1/1] mlp-8x8-s1"]
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "b").iterdir()}
    assert {n for n in after if after[n] != before.get(n)} == {"mlp-8x8-s1@2.json", "mlp-8x8-s1@2.pt"}
    _same(alone, again, tmp_path / "a", tmp_path / "b")


def test_anchor_scores_are_the_symmetric_score_of_the_predictors(tmp_path):
    """The atlas test's scores (one model against some anchors) and the zoo's score_sym: two paths."""
    data, zs, adversarial, labels = _tiny(tmp_path)
    records = zoo.train_all(zs.specs, data, zs, tmp_path / "a", adversarial, labels, progress=lambda _t: None)
    specs, by_id = {s.run_id: s for s in zs.specs}, {r["id"]: r for r in records}
    probe = data.x_test[:60]
    got = zoo._anchor_measure(records, specs, 8, tmp_path / "a", probe)("mlp-16-s0@1", ["cnn-2x4-s0@1", "mlp-8x8-s1@2"])
    assert list(got) == ["cnn-2x4-s0@1", "mlp-8x8-s1@2"]
    model = zoo.load_model(by_id["mlp-16-s0@1"], specs["mlp-16-s0"], 8, tmp_path / "a")
    for anchor, value in got.items():
        spec = specs[by_id[anchor]["run"]]
        ref = zoo.load_model(by_id[anchor], spec, 8, tmp_path / "a")
        want = zoo.predictors(model, specs["mlp-16-s0"], ref, spec, probe, 8)["score_sym"]
        assert value == pytest.approx(want, abs=1e-9)


@pytest.mark.slow
def test_training_on_a_dask_cluster_equals_in_process(tmp_path):
    pytest.importorskip("neurocorr_dask")
    from neurocorr_core.scale_out import get_executor

    data, zs, adversarial, labels = _tiny(tmp_path)
    alone = zoo.train_all(zs.specs, data, zs, tmp_path / "a", adversarial, labels, progress=lambda _t: None)
    lines: list[str] = []
    with get_executor("dask", workers=2) as executor:
        tasks = zoo.train_all(zs.specs, data, zs, tmp_path / "b", adversarial, labels, executor=executor,
                              progress=lines.append)
    assert "on dask" in lines[0] and len(lines) == 4  # the runs arrive as they finish, in any order
    _same(alone, tasks, tmp_path / "a", tmp_path / "b")


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
    refs = doc["references"]
    assert refs["overall"] == doc["reference"] and refs["cnn"].startswith("cnn-") and refs["mlp"].startswith("mlp-")
    trusted = {r["id"]: r["accuracy"] for r in doc["records"] if not r["noise"] and r["train_frac"] == 1}
    assert trusted[refs["overall"]] == max(trusted.values())
    for family in ("cnn", "mlp"):
        assert trusted[refs[family]] == max(a for i, a in trusted.items() if i.startswith(family))
        assert set(doc["versus"][refs[family]]) == {r["id"] for r in doc["records"]}
    assert doc["probe"] == 300
    with open(out / "families.csv") as f:
        families = list(csv.DictReader(f))
    assert len(families) == 2 * 3 * len(zoo.PREDICTORS) * len(zoo.TARGETS)
    # the overall reference's tables and the same reference's family rows over all models: two paths, one number
    key = next(k for k in ("cnn", "mlp") if refs[k] == refs["overall"])
    for r in rows:
        f = next(x for x in families if (x["reference"], x["models"], x["predictor"], x["target"])
                 == (key, "all", r["predictor"], r["target"]))
        assert float(f["rho"]) == pytest.approx(float(r["rho"]), abs=1e-9)
    n_mlp = sum(r["family"] == "mlp" for r in doc["records"])
    assert {int(x["n"]) for x in families if (x["reference"], x["models"]) == ("mlp", "mlp")} == {n_mlp - 1}
    assert (out / "scatter.png").read_bytes()[:4] == b"\x89PNG"
    tables = (out / "tables.md").read_text()
    assert "| score_ab |" in tables and "Against **drop**" in tables
    # the atlas's estimators, left out by architecture: their mean-of-training baseline is the line's baseline
    with open(out / "atlas_leave_one_architecture_out.csv") as f:
        atlas = list(csv.DictReader(f))
    with open(out / "leave_one_architecture_out.csv") as f:
        logo = list(csv.DictReader(f))
    assert len(atlas) == len(zoo.TARGETS) * 2 * 2 and "| accuracy | weighted | mean_training |" in tables
    for r in atlas:
        assert int(r["models"]) == 27 and 0 < float(r["p_architectures"]) <= 1
        if r["baseline"] == "mean_training":
            line = next(x for x in logo if x["target"] == r["target"])
            assert float(r["mae_baseline"]) == pytest.approx(float(line["mae_mean"]), abs=1e-12)
    for ref in {refs["cnn"], refs["mlp"]}:  # the anchors' scores with the zoo's references are its score_sym
        assert ref in doc["anchors"]
        for model, row in doc["anchor_scores"].items():
            if model != ref:
                assert row[ref] == pytest.approx(doc["versus"][ref][model]["score_sym"], abs=1e-12)
    # a second run finds every model and predictor on disk: nothing is retrained
    _run("digits", out)
    second = capsys.readouterr().out
    assert "training runs: 14 of 14 found" in second and "[1/" not in second and "scores against the" not in second
    assert "(0 comparisons run in this invocation)" in (out / "tables.md").read_text()
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
