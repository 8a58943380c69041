"""Executors: sharded runs equal unsharded ones, Dask equals local on the same shards (a LocalCluster
on 127.0.0.1, and a scheduler and worker started as separate processes), and bad input is refused
with a message that says what to do."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neurocorr_core import NeurocorrError, compare
from neurocorr_core.executor import DaskExecutor, LocalExecutor, get_executor, shard_bounds
from neurocorr_core.grid import GridConfig, GridModel, grid
from numpy_models import mlp

TESTS = Path(__file__).resolve().parent
NAMES = ["mlp_a", "mlp_b", "mlp_c", "cnn_a"]


@pytest.fixture
def probe():
    return np.random.default_rng(5).normal(size=(30, 1, 8, 8)).astype(np.float32)


def models(names=NAMES):
    return [GridModel(n, f"grid_models:{n}") for n in names]


@pytest.fixture(scope="module")
def cluster():
    """One 2-worker LocalCluster on 127.0.0.1 for the module (its workers inherit sys.path)."""
    pytest.importorskip("distributed")
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    ex = DaskExecutor(workers=2)
    yield ex
    ex.close()


# -- shards ------------------------------------------------------------------------------------------
def test_shard_bounds_cover_the_probe_in_order():
    bounds = shard_bounds(11, 3)
    assert bounds == [(0, 4), (4, 7), (7, 11)]
    assert shard_bounds(5, 1) == [(0, 5)]


@pytest.mark.parametrize("shards, message", [(0, "at least 1"), (2.5, "whole number"),
                                             (6, "fewer than 2 samples; use at most 5")])
def test_bad_shard_counts(shards, message):
    with pytest.raises(NeurocorrError, match=message):
        shard_bounds(10, shards)


def naive_score(x, y, depth_x, depth_y):
    """The paper's score A->B from scratch: |Pearson r| / (|d_i - d_j| + 1), max over j, mean over i."""
    r = np.corrcoef(x.T.astype(np.float64), y.T.astype(np.float64))[:x.shape[1], x.shape[1]:]
    r = np.nan_to_num(np.abs(r))
    pen = np.abs(np.subtract.outer(depth_x, depth_y)) + 1
    return float(np.mean(np.max(r / pen, axis=1)))


def test_sharded_grid_equals_naive_formula_and_unsharded_compare(pm, probe):
    result = grid(models(), probe, shards=4, plugin_manager=pm)
    assert result.shards == 4 and result.executor == "local"
    assert np.isnan(np.diag(result.scores)).all()
    # an independent check: mlp_a vs mlp_b from the raw activations
    a, b = mlp(0, [6, 5], n_in=64), mlp(1, [8, 4], n_in=64)
    out_a, out_b = a.run(probe), b.run(probe)
    x = np.concatenate([out_a["act0"], out_a["act1"]], axis=1)
    y = np.concatenate([out_b["act0"], out_b["act1"]], axis=1)
    dx, dy = np.repeat([0, 1], [6, 5]), np.repeat([0, 1], [8, 4])
    assert result.scores[0, 1] == pytest.approx(naive_score(x, y, dx, dy), abs=1e-6)  # float32 GEMMs
    assert result.scores[1, 0] == pytest.approx(naive_score(y, x, dy, dx), abs=1e-6)
    # other shards centre other batches before the float32 GEMM: equal to float32 rounding
    for i, j in [(0, 1), (1, 3), (2, 3)]:
        direct = compare(f"grid_models:{NAMES[i]}", f"grid_models:{NAMES[j]}", probe, plugin_manager=pm)
        assert result.scores[i, j] == pytest.approx(direct.score.a_to_b, abs=1e-6)
        assert result.scores[j, i] == pytest.approx(direct.score.b_to_a, abs=1e-6)
    # one shard, one batch: the computation compare() does, reached through the grid
    single = grid(models(), probe, plugin_manager=pm)
    assert single.scores[2, 3] == pytest.approx(direct.score.a_to_b, abs=1e-6)
    assert single.scores[3, 2] == pytest.approx(direct.score.b_to_a, abs=1e-6)


def test_each_model_is_extracted_once_per_shard(pm, probe):
    import grid_models

    before = grid_models.passes()
    grid(models(), probe, shards=3, config=GridConfig(batch_size=100), plugin_manager=pm)
    # 4 models x 3 shards, one batch each, although each model is in 3 pairs
    assert grid_models.passes() - before == 4 * 3


def test_grid_of_chosen_pairs_and_skipped_pairs(pm, probe):
    result = grid(models(), probe, pairs=[("mlp_a", "cnn_a"), ("mlp_b", "mlp_c")], skip=[("mlp_c", "mlp_b")],
                  plugin_manager=pm)
    assert result.computed == [("mlp_a", "cnn_a")]
    assert np.isfinite(result.scores[0, 3]) and np.isnan(result.scores[1, 2])


def test_duplicate_model_names_are_refused(pm, probe):
    with pytest.raises(NeurocorrError, match="model name 'mlp_a' is given twice; give every model its own "
                                             "name"):
        grid([*models(), GridModel("mlp_a", "grid_models:mlp_b")], probe, plugin_manager=pm)


def test_a_pair_naming_an_unknown_model(pm, probe):
    with pytest.raises(NeurocorrError, match="names 'zzz', which is not among the grid's models"):
        grid(models(), probe, pairs=[("mlp_a", "zzz")], plugin_manager=pm)


# -- executors by name -----------------------------------------------------------------------------------
def test_get_executor_defaults_and_errors():
    assert isinstance(get_executor(None), LocalExecutor)
    with pytest.raises(NeurocorrError, match="unknown executor 'spark'; choose one of local, dask"):
        get_executor("spark")
    with pytest.raises(NeurocorrError, match="belong to the dask executor; add --executor dask"):
        get_executor("local", workers=2)
    with pytest.raises(NeurocorrError, match="workers must be a whole number of at least 1"):
        get_executor("dask", workers=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_fails_fast_with_a_message():
    pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    with pytest.raises(NeurocorrError, match=r"cannot reach the Dask scheduler at 'tcp://127\.0\.0\.1:\d+' "
                                             r"\(Connection refused\).*dask scheduler --host 127\.0\.0\.1"):
        DaskExecutor(address, timeout=2)
    assert time.perf_counter() - start < 15


def test_scheduler_and_workers_together_are_refused():
    pytest.importorskip("distributed")
    with pytest.raises(NeurocorrError, match="--workers starts a local cluster"):
        DaskExecutor("tcp://127.0.0.1:1", workers=2)


# -- Dask equals local ------------------------------------------------------------------------------------
def test_dask_local_cluster_equals_local_on_the_same_shards(pm, probe, cluster):
    local = grid(models(), probe, shards=3, executor=LocalExecutor(threads=1), plugin_manager=pm)
    dask = grid(models(), probe, shards=3, executor=cluster, plugin_manager=pm)
    assert dask.executor.startswith("dask") and dask.shards == 3
    assert sorted(dask.computed) == sorted(local.computed)
    np.testing.assert_allclose(dask.scores, local.scores, atol=1e-6, rtol=0)  # other processes, other BLAS threads
    for pair, comp in local.comparisons.items():
        np.testing.assert_allclose(dask.comparisons[pair].layer_table, comp.layer_table, atol=1e-6, rtol=0)
        np.testing.assert_array_equal(dask.comparisons[pair].partner_a, comp.partner_a)


def test_dask_default_is_one_shard_per_worker(pm, probe, cluster):
    result = grid(models(NAMES[:2]), probe, executor=cluster, plugin_manager=pm)
    assert result.shards == 2


def test_in_memory_models_do_not_travel_to_dask(pm, probe, cluster):
    message = r"sends models to its workers as file paths or 'module:callable' references, but got an " \
              r"in-memory numpy_models\.NumpyNet"
    with pytest.raises(NeurocorrError, match=message):
        grid([GridModel("a", mlp(0, [6], n_in=64)), GridModel("b", "grid_models:mlp_b")], probe,
             executor=cluster, plugin_manager=pm)


def test_a_worker_error_reaches_the_caller(pm, probe, cluster):
    with pytest.raises(NeurocorrError, match="layer 'act' of bad produced 45 NaN/Inf values"):
        grid([GridModel("bad", "grid_models:nan_on_big_batches"), *models(["mlp_a"])], probe, shards=2,
             executor=cluster, plugin_manager=pm)


def _start(args, log: Path, env) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.mark.slow
def test_dask_scheduler_and_worker_processes_equal_local(pm, probe, tmp_path):
    """'dask scheduler' and 'dask worker' as separate processes, on loopback, always torn down."""
    pytest.importorskip("distributed")
    dask_cli = Path(sys.executable).with_name("dask")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    info = tmp_path / "scheduler.json"
    procs = [_start([str(dask_cli), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(info)], tmp_path / "scheduler.log", env)]
    try:
        deadline = time.time() + 60
        while not info.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert info.exists(), (tmp_path / "scheduler.log").read_text()
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(_start([str(dask_cli), "worker", address, "--host", "127.0.0.1", "--nworkers", "2",
                             "--nthreads", "1", "--no-dashboard", "--death-timeout", "60"],
                            tmp_path / "worker.log", env))
        ex = DaskExecutor(address, timeout=10)
        try:
            ex.client.wait_for_workers(2, timeout=60)
            remote = grid(models(), probe, shards=3, executor=ex, plugin_manager=pm)
        finally:
            ex.close()
        local = grid(models(), probe, shards=3, executor=LocalExecutor(threads=1), plugin_manager=pm)
        np.testing.assert_allclose(remote.scores, local.scores, atol=1e-6, rtol=0)
        assert remote.executor.startswith(f"dask ({address}")
    finally:
        for proc in reversed(procs):
            _stop(proc)


# -- compare() on executors --------------------------------------------------------------------------------
def test_compare_on_shards_equals_the_grid_and_records_what_ran(pm, probe):
    result = compare("grid_models:mlp_a", "grid_models:cnn_a", probe, shards=3, plugin_manager=pm)
    assert result.config["executor"] == {"executor": "local", "shards": 3, "cache": None}
    table = grid(models(["mlp_a", "cnn_a"]), probe, shards=3, plugin_manager=pm)
    assert result.score.a_to_b == pytest.approx(table.scores[0, 1], abs=1e-6)
    assert result.score.b_to_a == pytest.approx(table.scores[1, 0], abs=1e-6)
    plain = compare("grid_models:mlp_a", "grid_models:cnn_a", probe, plugin_manager=pm)
    assert "executor" not in plain.config
    assert result.score.symmetric == pytest.approx(plain.score.symmetric, abs=1e-6)


def test_compare_on_dask_equals_local_on_the_same_shards(pm, probe, cluster):
    local = compare("grid_models:mlp_b", "grid_models:cnn_a", probe, shards=2, neurons="position",
                    plugin_manager=pm)
    dask = compare("grid_models:mlp_b", "grid_models:cnn_a", probe, shards=2, neurons="position",
                   executor=cluster, plugin_manager=pm)
    assert dask.config["executor"]["executor"].startswith("dask")
    assert dask.score.a_to_b == pytest.approx(local.score.a_to_b, abs=1e-6)
    assert dask.score.b_to_a == pytest.approx(local.score.b_to_a, abs=1e-6)
    np.testing.assert_allclose(dask.layer_table, local.layer_table, atol=1e-6, rtol=0)


def test_significance_does_not_run_sharded(pm, probe):
    with pytest.raises(NeurocorrError, match="do not run on an executor or with shards or the cache"):
        compare("grid_models:mlp_a", "grid_models:mlp_b", probe, shards=2, permutations=9, plugin_manager=pm)


@pytest.mark.slow
def test_cli_compare_on_a_dask_local_cluster(pm, probe, tmp_path, monkeypatch, capsys):
    pytest.importorskip("distributed")
    from neurocorr_core import plugins
    from neurocorr_core.cli import main

    monkeypatch.setattr(plugins, "_default", pm)
    monkeypatch.syspath_prepend(str(TESTS))
    np.save(tmp_path / "probe.npy", probe)
    args = ["compare", "grid_models:mlp_a", "grid_models:cnn_b", "--probe", str(tmp_path / "probe.npy"),
            "--quiet", "--shards", "2"]
    assert main([*args, "--executor", "dask", "--workers", "2", "--json", str(tmp_path / "d.json")]) == 0
    assert main([*args, "--json", str(tmp_path / "l.json")]) == 0
    dask, local = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "dl")
    assert dask["config"]["executor"]["executor"] == "dask (a local cluster on 127.0.0.1, 2 workers)"
    assert dask["score"] == pytest.approx(local["score"], abs=1e-6)
    capsys.readouterr()
    assert main([*args, "--executor", "local", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "belong to the dask executor; add --executor dask" in capsys.readouterr().err


def test_experiment_files_take_the_executor_keys(pm, probe, tmp_path, monkeypatch, capsys):
    from neurocorr_core import plugins
    from neurocorr_core.cli import main

    monkeypatch.setattr(plugins, "_default", pm)
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "probe.npy", probe)
    (tmp_path / "exp.toml").write_text('[models]\na = "grid_models:mlp_a"\nb = "grid_models:cnn_a"\n\n'
                                       '[compare]\nprobe = "probe.npy"\nexecutor = "local"\nshards = 3\n'
                                       'cache_dir = "cache"\nquiet = true\n')
    assert main(["run", "--keys"]) == 0
    keys = capsys.readouterr().out
    assert all(k in keys for k in ("executor", "scheduler", "workers", "shards", "cache_dir"))
    assert main(["run", "exp.toml", "--json", "out.json"]) == 0
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["config"]["executor"] == {"executor": "local", "shards": 3, "cache": "cache"}
    assert list((tmp_path / "cache").rglob("*.act"))
    (tmp_path / "bad.toml").write_text('[models]\na = "grid_models:mlp_a"\nb = "grid_models:cnn_a"\n\n'
                                       '[compare]\nprobe = "probe.npy"\nexecutor = "spark"\n')
    assert main(["run", "bad.toml"]) == 2
    assert "executor" in capsys.readouterr().err


def test_a_local_cluster_that_cannot_start_names_the_main_guard(monkeypatch):
    distributed = pytest.importorskip("distributed")

    def broken(**kwargs):
        raise RuntimeError("Nanny failed to start.")

    monkeypatch.setattr(distributed, "LocalCluster", broken)
    message = (r"could not start a local Dask cluster of 3 workers \(Nanny failed to start\.\)\. "
               r"A script that starts one needs an 'if __name__")
    with pytest.raises(NeurocorrError, match=message):
        DaskExecutor(workers=3)


def test_local_executor_threads(pm, probe):
    with pytest.raises(NeurocorrError, match="threads must be a whole number of at least 1"):
        LocalExecutor(threads=0)
    one = grid(models(NAMES[:2]), probe, executor=LocalExecutor(threads=1), plugin_manager=pm)
    assert one.executor == "local (1 BLAS thread)"
    # one BLAS thread splits the GEMMs otherwise than several: equal to float32 rounding
    np.testing.assert_allclose(one.scores, grid(models(NAMES[:2]), probe, plugin_manager=pm).scores, atol=1e-6)
