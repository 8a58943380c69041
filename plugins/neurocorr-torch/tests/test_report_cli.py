"""End to end from the command line with PyTorch models: compare's output options and 'run'."""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="reports need matplotlib: pip install 'neurocorr-core[plots]'")
pytestmark = pytest.mark.slow  # each test starts neurocorr (and torch) in a subprocess

HERE = Path(__file__).parent


def run_cli(*args, cwd=HERE):
    return subprocess.run([sys.executable, "-m", "neurocorr_core.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_compare_writes_report_csv_heatmap_and_json_together(tmp_path):
    out = {"json": tmp_path / "r.json", "csv": tmp_path / "r.csv", "report": tmp_path / "r.html",
           "heatmap": tmp_path / "h.png"}
    proc = run_cli("compare", "models:small_cnn", "models:small_cnn", "--probe", "digits", "--probe-limit", "120",
                   "--quiet", *[a for kind, path in out.items() for a in (f"--{kind}", str(path))])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out["json"].read_text())
    live = sum(la["neurons"] - la["dead"] for la in data["layers_a"])
    total = sum(la["neurons"] for la in data["layers_a"])
    assert data["score"]["symmetric"] == pytest.approx(live / total, abs=1e-6)  # a model against itself
    rows = list(csv.DictReader(io.StringIO(out["csv"].read_text())))
    assert float(next(r for r in rows if r["side"] == "symmetric")["score"]) == pytest.approx(
        data["score"]["symmetric"])
    text = out["report"].read_text()
    # two figures, and the per-neuron histogram drawn for every neuron-level metric (since 2e73116)
    assert text.startswith("<!DOCTYPE html>") and "models:small_cnn" in text and text.count("<img ") == 3
    assert out["heatmap"].read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.png", "r.csv", "r.html", "r.json"]


def test_an_error_half_way_leaves_no_output(tmp_path):
    proc = run_cli("compare", "models:mlp_a", "models:mlp_b", "--probe", "digits", "--layers-b", "no-such-layer",
                   "--report", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 2 and "matches no layer" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_output_is_refused_before_the_work(tmp_path):
    proc = run_cli("compare", "models:mlp_a", "models:mlp_b", "--probe", "digits", "--json", str(tmp_path / "r.json"),
                   "--report", str(tmp_path / "missing" / "r.html"))
    assert proc.returncode == 2
    assert f"cannot write {tmp_path / 'missing' / 'r.html'} (--report): the folder" in proc.stderr
    assert "score" not in proc.stdout and list(tmp_path.iterdir()) == []


def test_run_an_experiment_file(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "experiment.toml").write_text("""
[models]
a = "models:mlp_a"
b = "models:mlp_b"

[compare]
probe = "digits"
probe_limit = 200
neurons = "position"
layers_a = "kind:relu"
depth_penalty = "none"

[outputs]
json = "out/result.json"
report = "out/report.html"
heatmap = "out/heatmap.svg"
""")
    (tmp_path / "models.py").write_text((HERE / "models.py").read_text())
    proc = run_cli("run", str(tmp_path / "experiment.toml"), "--quiet", cwd=tmp_path.parent)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "out" / "result.json").read_text())
    assert [la["name"] for la in data["layers_a"]] == ["2", "4"]
    assert data["config"]["neurons"] == "position" and data["samples"] == 200
    assert (tmp_path / "out" / "heatmap.svg").read_text().lstrip().startswith("<?xml")
    same = run_cli("compare", "models:mlp_a", "models:mlp_b", "--probe", "digits", "--probe-limit", "200",
                   "--neurons", "position", "--layers-a", "kind:relu", "--depth-penalty", "none", "--quiet",
                   "--json", str(tmp_path / "cli.json"))
    assert same.returncode == 0, same.stderr
    assert json.loads((tmp_path / "cli.json").read_text())["score"] == pytest.approx(data["score"], abs=1e-6)
