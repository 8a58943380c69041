"""Feature export: extract() and `neurocorr extract` write what a comparison sees, and comparing two
exports gives the comparison of the models on the probe (every metric, matching and view)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from neurocorr_arrays import extract
from neurocorr_core import NeurocorrError, compare, open_model
from numpy_cli import cli_env
from numpy_models import cnn, mlp

METRICS = [m for m in ("pearson", "spearman", "cka") if __import__("importlib").util.find_spec(f"neurocorr_{m}")]


@pytest.fixture
def images():
    return np.random.default_rng(5).normal(size=(50, 1, 8, 8)).astype(np.float32)


def same(r1, r2, tol=1e-7):
    for d in ("a_to_b", "b_to_a"):
        assert abs(getattr(r1.score, d) - getattr(r2.score, d)) < tol, (r1.score, r2.score)
    np.testing.assert_allclose(r1.layer_table, r2.layer_table, atol=tol)
    np.testing.assert_allclose(r1.layer_table_ba, r2.layer_table_ba, atol=tol)
    np.testing.assert_allclose(np.nan_to_num(r1.value_a, nan=-9), np.nan_to_num(r2.value_a, nan=-9), atol=tol)
    assert r1.dead_neurons == r2.dead_neurons


@pytest.mark.parametrize("neurons", ["channel", "position"])
@pytest.mark.parametrize("matching", ["max", "mutual", "hungarian"])
@pytest.mark.parametrize("metric", METRICS)
def test_comparing_exports_equals_comparing_the_models(pm, tmp_path, images, metric, matching, neurons):
    a, b = cnn(0), cnn(1)
    layers = "act0,act1" if metric != "cka" else "act0,act1,act2"
    kw = {"metric": metric, "matching": matching, "neurons": neurons, "constant_neurons": "zero"}
    out_a = extract(a, images, out=tmp_path / "a.npz", layers=layers, neurons=neurons, batch_size=16,
                    plugin_manager=pm)
    out_b = extract(b, images, out=tmp_path / "b", layers=layers, neurons=neurons, batch_size=16,
                    plugin_manager=pm)
    ref = compare(a, b, images, layers_a=layers, layers_b=layers, batch_size=16, plugin_manager=pm, **kw)
    same(compare(out_a, out_b, batch_size=16, plugin_manager=pm, **kw), ref)
    same(compare(out_a, b, images, layers_b=layers, batch_size=16, plugin_manager=pm, **kw), ref)


def test_the_export_holds_the_views_and_the_index(pm, tmp_path, images):
    net = cnn(0)
    out = extract(net, images, out=tmp_path / "f", layers="conv1,act2", neurons="channel", plugin_manager=pm)
    index = json.loads((out / "layers.json").read_text())
    assert [e["name"] for e in index["layers"]] == ["conv1", "act2"] and index["samples"] == 50
    ref = net.run(images)
    np.testing.assert_allclose(np.load(out / f"{index['layers'][0]['file']}.npy"), ref["conv1"].mean(axis=(2, 3)),
                               rtol=1e-6)
    prov = open_model(out, pm=pm)
    assert [(la.name, la.kind, la.op, la.depth) for la in prov.layers(None)] == \
        [("conv1", "conv", "Conv2d", 2), ("act2", "activation", "ReLU", 5)]
    pos = extract(net, images, out=tmp_path / "p.npz", layers="conv1", neurons="position", plugin_manager=pm)
    with np.load(pos) as npz:
        np.testing.assert_allclose(npz["000_conv1"], ref["conv1"].reshape(50, -1), rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "p.npz"]  # no temporary folder is left


def test_an_export_fails_before_it_writes(pm, tmp_path, images):
    (tmp_path / "f").mkdir()
    with pytest.raises(NeurocorrError, match="exists; give a new folder"):
        extract(cnn(0), images, out=tmp_path / "f", plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="needs a probe"):
        extract(cnn(0), out=tmp_path / "g", plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="matches no layer"):
        extract(cnn(0), images, out=tmp_path / "g", layers="nope", plugin_manager=pm)
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_the_command_writes_an_export_that_compare_reads(tmp_path):
    env = {**os.environ, **cli_env(tmp_path / "site")}
    env["PYTHONPATH"] += os.pathsep + str(tmp_path)
    (tmp_path / "nets.py").write_text("from numpy_models import mlp\n"
                                      "def a():\n    return mlp(0, [8, 6], n_in=64)\n"
                                      "def b():\n    return mlp(1, [7], n_in=64)\n")
    run = lambda *argv: subprocess.run([sys.executable, "-m", "neurocorr_core.cli", *argv], cwd=tmp_path,  # noqa: E731
                                       env=env, capture_output=True, text=True, timeout=300)
    done = run("extract", "nets:a", "--probe", "digits", "--out", "a.npz")
    assert done.returncode == 0, done.stderr
    assert "wrote a.npz" in done.stdout
    done = run("compare", "a.npz", "nets:b", "--probe", "digits", "--layers-b", "act*")
    assert done.returncode == 0, done.stderr
    assert "score A->B" in done.stdout


def test_the_token_view_is_refused_with_what_to_use(tmp_path):
    with pytest.raises(NeurocorrError, match="one row per token.*'mean' or 'first'"):
        extract(mlp(0, [4]), np.zeros((4, 16), np.float32), out=tmp_path / "x.npz", neurons="token")
    assert not any(tmp_path.iterdir())
