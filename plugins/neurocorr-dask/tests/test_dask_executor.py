"""The dask executor: Dask equals local on the same shards (a LocalCluster on 127.0.0.1, and a
scheduler and worker started as separate processes), compare() and the CLI on Dask, the plugin
chosen by name with its options, and bad input refused with a message that says what to do."""

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
from neurocorr_core.scale_out import get_executor
from neurocorr_dask import DaskExecutor
from neurocorr_scale.executor import LocalExecutor
from neurocorr_scale.grid import GridModel, grid
from numpy_models import mlp
from scheduler_file import scheduler_address

CORE_TESTS = Path(__file__).resolve().parents[3] / "tests"
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
    if str(CORE_TESTS) not in sys.path:
        sys.path.insert(0, str(CORE_TESTS))
    ex = DaskExecutor(workers=2)
    yield ex
    ex.close()


# -- the plugin ---------------------------------------------------------------------------------------------
def test_the_plugin_offers_the_dask_executor_by_name(pm):
    assert pm.executor("dask") is DaskExecutor
    info = {i.name: i for i in pm.plugins()}["dask"]
    assert info.status == "ok" and info.provides == {"executor": ["dask"]}


def test_loading_the_plugin_does_not_import_distributed():
    """``neurocorr --help`` loads every plugin: Dask is imported when an executor is built."""
    code = ("import sys; from neurocorr_core import PluginManager; pm = PluginManager(); "
            "assert 'dask' in pm.names('executor'); print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('distributed', 'dask')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_get_executor_refuses_bad_dask_options(pm):
    with pytest.raises(NeurocorrError, match="workers must be a whole number of at least 1"):
        get_executor("dask", workers=0, plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="workers must be a whole number of at least 1, got 0"):
        get_executor("dask", options={"workers": 0}, plugin_manager=pm)
    with pytest.raises(NeurocorrError, match=r"executor 'dask' has no option\(s\) threads; the options it takes: "
                                             r"scheduler, timeout, workers"):
        get_executor("dask", options={"threads": 1}, plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="timeout must be a positive number of seconds, got -1"):
        DaskExecutor(timeout=-1)


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


def test_the_timeout_option_reaches_the_executor(pm, monkeypatch):
    """``--executor-option timeout=2`` is the executor's keyword: a silent server fails after it."""
    pytest.importorskip("distributed")
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True).start()
    monkeypatch.setenv("NEUROCORR_DASK_TIMEOUT", "60")  # the option wins over the environment
    try:
        with pytest.raises(NeurocorrError, match="no answer to Dask's handshake within 2 s"):
            get_executor("dask", options={"scheduler": f"tcp://127.0.0.1:{server.getsockname()[1]}",
                                          "timeout": 2}, plugin_manager=pm)
    finally:
        for conn in held:
            conn.close()
        server.close()


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
    assert cluster.slots() == 2
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
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CORE_TESTS), os.environ.get("PYTHONPATH", "")])}
    info = tmp_path / "scheduler.json"
    procs = [_start([str(dask_cli), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(info)], tmp_path / "scheduler.log", env)]
    try:
        address = scheduler_address(info, procs[0])
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


# -- compare() on Dask --------------------------------------------------------------------------------------
def test_compare_on_dask_equals_local_on_the_same_shards(pm, probe, cluster):
    local = compare("grid_models:mlp_b", "grid_models:cnn_a", probe, shards=2, neurons="position",
                    plugin_manager=pm)
    dask = compare("grid_models:mlp_b", "grid_models:cnn_a", probe, shards=2, neurons="position",
                   executor=cluster, plugin_manager=pm)
    assert dask.config["executor"]["executor"].startswith("dask")
    assert dask.score.a_to_b == pytest.approx(local.score.a_to_b, abs=1e-6)
    assert dask.score.b_to_a == pytest.approx(local.score.b_to_a, abs=1e-6)
    np.testing.assert_allclose(dask.layer_table, local.layer_table, atol=1e-6, rtol=0)


@pytest.mark.slow
def test_cli_compare_on_a_dask_local_cluster(pm, probe, tmp_path, monkeypatch, capsys):
    pytest.importorskip("distributed")
    from neurocorr_core import plugins
    from neurocorr_core.cli import main

    monkeypatch.setattr(plugins, "_default", pm)
    monkeypatch.syspath_prepend(str(CORE_TESTS))
    np.save(tmp_path / "probe.npy", probe)
    args = ["compare", "grid_models:mlp_a", "grid_models:cnn_b", "--probe", str(tmp_path / "probe.npy"),
            "--quiet", "--shards", "2"]
    assert main([*args, "--executor", "dask", "--workers", "2", "--json", str(tmp_path / "d.json")]) == 0
    assert main([*args, "--json", str(tmp_path / "l.json")]) == 0
    # the same cluster through the executor's own options
    assert main([*args, "--executor", "dask", "--executor-option", "workers=2", "--executor-option", "timeout=30",
                 "--json", str(tmp_path / "o.json")]) == 0
    dask, local, by_option = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "dlo")
    assert dask["config"]["executor"]["executor"] == "dask (a local cluster on 127.0.0.1, 2 workers)"
    assert by_option["config"]["executor"] == dask["config"]["executor"]
    assert dask["score"] == pytest.approx(local["score"], abs=1e-6)
    assert by_option["score"] == pytest.approx(local["score"], abs=1e-6)
    capsys.readouterr()
    assert main([*args, "--executor", "local", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "belong to the dask executor; add --executor dask" in capsys.readouterr().err


def test_a_local_cluster_that_cannot_start_names_the_main_guard(monkeypatch):
    distributed = pytest.importorskip("distributed")

    def broken(**kwargs):
        raise RuntimeError("Nanny failed to start.")

    monkeypatch.setattr(distributed, "LocalCluster", broken)
    message = (r"could not start a local Dask cluster of 3 workers \(Nanny failed to start\.\)\. "
               r"A script that starts one needs an 'if __name__")
    with pytest.raises(NeurocorrError, match=message):
        DaskExecutor(workers=3)
