"""Executors: sharded runs equal unsharded ones; executors are chosen by name through the plugin
manager, with their options (--executor-option), like metrics; a missing executor plugin names the
package to install; a cluster lost mid-run names the shards it finished; bad input is refused with
a message that says what to do. The dask executor's own tests: plugins/neurocorr-dask/tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import bad_input
from neurocorr_core import NeurocorrError, compare, hookimpl
from neurocorr_core.scale_out import get_executor
from neurocorr_scale.cache import ActivationCache
from neurocorr_scale.executor import ExecutorLost, LocalExecutor, shard_bounds
from neurocorr_scale.grid import GridConfig, GridModel, grid
from numpy_models import mlp

TESTS = Path(__file__).resolve().parents[3] / "tests"  # the core's test models
NAMES = ["mlp_a", "mlp_b", "mlp_c", "cnn_a"]


@pytest.fixture
def probe():
    return np.random.default_rng(5).normal(size=(30, 1, 8, 8)).astype(np.float32)


def models(names=NAMES):
    return [GridModel(n, f"grid_models:{n}") for n in names]


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
def test_get_executor_defaults_and_errors(pm):
    assert isinstance(get_executor(None, plugin_manager=pm), LocalExecutor)
    with pytest.raises(NeurocorrError, match="no executor named 'spark'; available: .*local"):
        get_executor("spark", plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="belong to the dask executor; add --executor dask"):
        get_executor("local", workers=2, plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="workers must be a whole number of at least 1"):
        get_executor("dask", workers=0, plugin_manager=pm)


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


def test_significance_does_not_run_sharded(pm, probe):
    with pytest.raises(NeurocorrError, match="do not run on an executor or with shards or the cache"):
        compare("grid_models:mlp_a", "grid_models:mlp_b", probe, shards=2, permutations=9, plugin_manager=pm)


def test_experiment_files_take_the_executor_keys(pm, probe, tmp_path, monkeypatch, capsys):
    from neurocorr_core import plugins
    from neurocorr_core.cli import main

    monkeypatch.setattr(plugins, "_default", pm)
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "probe.npy", probe)
    (tmp_path / "exp.toml").write_text('[models]\na = "grid_models:mlp_a"\nb = "grid_models:cnn_a"\n\n'
                                       '[compare]\nprobe = "probe.npy"\nexecutor = "local"\nshards = 3\n'
                                       'executor_option = ["threads=1"]\ncache_dir = "cache"\nquiet = true\n')
    assert main(["run", "--keys"]) == 0
    keys = capsys.readouterr().out
    assert all(k in keys for k in ("executor", "executor_option", "scheduler", "workers", "shards", "cache_dir"))
    assert main(["run", "exp.toml", "--json", "out.json"]) == 0
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["config"]["executor"] == {"executor": "local (1 BLAS thread)", "shards": 3, "cache": "cache"}
    assert list((tmp_path / "cache").rglob("*.act"))
    (tmp_path / "bad.toml").write_text('[models]\na = "grid_models:mlp_a"\nb = "grid_models:cnn_a"\n\n'
                                       '[compare]\nprobe = "probe.npy"\nexecutor = "spark"\n')
    assert main(["run", "bad.toml"]) == 2
    assert "compare.executor: 'spark' is not valid: invalid choice: 'spark' (choose from " in capsys.readouterr().err


def test_local_executor_threads(pm, probe):
    with pytest.raises(NeurocorrError, match="threads must be a whole number of at least 1"):
        LocalExecutor(threads=0)
    one = grid(models(NAMES[:2]), probe, executor=LocalExecutor(threads=1), plugin_manager=pm)
    assert one.executor == "local (1 BLAS thread)"
    # one BLAS thread splits the GEMMs otherwise than several: equal to float32 rounding
    np.testing.assert_allclose(one.scores, grid(models(NAMES[:2]), probe, plugin_manager=pm).scores, atol=1e-6)


# -- executors by name, with their options --------------------------------------------------------------
def test_executor_options_reach_the_constructor(pm, probe, tmp_path, monkeypatch):
    from neurocorr_core import plugins
    from neurocorr_core.cli import main

    result = compare("grid_models:mlp_a", "grid_models:cnn_a", probe, executor="local",
                     executor_options={"threads": 1}, plugin_manager=pm)
    assert result.config["executor"] == {"executor": "local (1 BLAS thread)", "shards": 1, "cache": None}
    table = grid(models(NAMES[:2]), probe, executor_options={"threads": 1}, plugin_manager=pm)
    assert table.executor == "local (1 BLAS thread)"
    monkeypatch.setattr(plugins, "_default", pm)
    np.save(tmp_path / "probe.npy", probe)
    assert main(["compare", "grid_models:mlp_a", "grid_models:cnn_a", "--probe", str(tmp_path / "probe.npy"),
                 "--quiet", "--executor-option", "threads=2", "--json", str(tmp_path / "out.json")]) == 0
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["config"]["executor"]["executor"] == "local (2 BLAS threads)"
    assert data["score"] == pytest.approx(result.to_dict()["score"], abs=1e-6)


def test_an_unknown_executor_option_is_refused_naming_those_it_takes(pm, probe):
    with pytest.raises(NeurocorrError, match=r"executor 'local' has no option\(s\) colour, size; the options it "
                                             r"takes: threads"):
        compare("grid_models:mlp_a", "grid_models:mlp_b", probe, executor_options={"colour": "red", "size": 2},
                plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="give either a started executor or its options"):
        compare("grid_models:mlp_a", "grid_models:mlp_b", probe, executor=LocalExecutor(),
                executor_options={"threads": 1}, plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="executor must be an executor's name"):
        get_executor(3, plugin_manager=pm)  # type: ignore[arg-type]


class Recording(LocalExecutor):
    """A third-party executor: the local one under another name, with options of its own."""

    name = "recording"
    built: ClassVar[list[dict]] = []

    def __init__(self, label: str = "", workers: int | None = None, **options):
        super().__init__(**options)
        self.label, self.count = label, workers
        Recording.built.append({"label": label, "workers": workers, **options})

    def describe(self) -> str:
        return f"recording {self.label}"


def recording_plugin():
    import types

    plugin = types.ModuleType("recording_plugin")
    plugin.neurocorr_executors = hookimpl(lambda: [Recording])
    return plugin


def test_an_executor_plugin_is_chosen_by_name_with_its_options(pm, probe):
    pm.register(recording_plugin(), "recording-test")
    assert "recording" in pm.names("executor") and pm.executor("recording") is Recording
    Recording.built.clear()
    result = compare("grid_models:mlp_a", "grid_models:cnn_a", probe, executor="recording", shards=2,
                     executor_options={"label": "x", "threads": 1}, workers=3, plugin_manager=pm)
    assert result.config["executor"] == {"executor": "recording x", "shards": 2, "cache": None}
    # --workers is a shorthand for the option of that name of whichever executor takes it
    assert Recording.built == [{"label": "x", "workers": 3, "threads": 1}]
    plain = compare("grid_models:mlp_a", "grid_models:cnn_a", probe, shards=2, plugin_manager=pm)
    assert result.score.symmetric == pytest.approx(plain.score.symmetric, abs=1e-6)
    with pytest.raises(NeurocorrError, match=r"executor 'recording' has no option\(s\) colour; the options it "
                                             r"takes: label, threads, workers"):
        get_executor("recording", options={"colour": 1}, plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="--scheduler and --workers belong to the dask executor"):
        get_executor("recording", scheduler="tcp://127.0.0.1:8786", plugin_manager=pm)


class Losing(LocalExecutor):
    """A cluster that goes away when the second shard's first extraction is submitted."""

    name = "losing"

    def __init__(self, restart: str = "") -> None:
        super().__init__()
        self.restart, self.extractions = restart, 0

    def submit(self, fn, *args):
        if fn.__name__ == "extract":
            if self.extractions == 2:
                raise ExecutorLost("the test cluster went away mid-run (lost)", self.restart)
            self.extractions += 1
        return super().submit(fn, *args)


def test_a_cluster_lost_mid_run_names_the_shards_it_finished(pm, probe, tmp_path):
    pair = ("grid_models:mlp_a", "grid_models:cnn_a")
    with pytest.raises(ExecutorLost) as lost:
        compare(*pair, probe, executor=Losing("start it again"), shards=2, cache=tmp_path, plugin_manager=pm)
    assert str(lost.value) == (
        "the test cluster went away mid-run (lost); the activations of 1 of 2 probe shards (samples 0:15) were "
        f"finished and are in the activation cache {tmp_path}; start it again and re-run the same command with "
        "--shards 2: it reads them from the cache instead of recomputing them")
    entries = ActivationCache(tmp_path).entries()  # the first shard's layers: mlp_a's 2, cnn_a's 3
    assert len(entries) == 5 and {e.meta["probe"] for e in entries} == {"array[0:15]"}
    with pytest.raises(ExecutorLost, match=r"\(samples 0:15\) were finished but not kept \(no --cache-dir\); "
                                           r"re-run the command, with --cache-dir DIR"):
        compare(*pair, probe, executor=Losing(), shards=2, plugin_manager=pm)


# -- a missing executor plugin, and what an experiment file may not choose -------------------------------------
MISSING_DASK = [
    pytest.param(["--executor", "dask"], id="executor"),
    pytest.param(["--workers", "2"], id="workers"),
    pytest.param(["--scheduler", "tcp://127.0.0.1:8786"], id="scheduler"),
    pytest.param(["--executor", "dask", "--executor-option", "workers=2"], id="executor-option"),
    pytest.param("executor = \"dask\"", id="experiment-file"),
]


@pytest.mark.parametrize("how", MISSING_DASK)
def test_the_dask_executor_without_its_plugin_names_the_package(tmp_path, how):
    """neurocorr-dask disabled (as if not installed): one line naming the package to install."""
    import fault_models

    np.save(tmp_path / "probe.npy", np.random.default_rng(5).normal(size=(20, 64)).astype(np.float32))
    if isinstance(how, str):
        (tmp_path / "exp.toml").write_text('[models]\na = "grid_models:mlp_a"\nb = "grid_models:mlp_b"\n\n'
                                           f'[compare]\nprobe = "probe.npy"\nquiet = true\n{how}\n')
        argv = ["run", "exp.toml", "--json", "out.json"]
    else:
        argv = ["compare", "grid_models:mlp_a", "grid_models:mlp_b", "--probe", "probe.npy", "--quiet", "--json",
                "out.json", *how]
    before = bad_input.snapshot(tmp_path)
    run = fault_models.run(argv, tmp_path, fault_models.cli_env(NEUROCORR_DISABLE_PLUGINS="dask"))
    line = bad_input.assert_user_error(run, "the dask executor comes with the plugin package neurocorr-dask",
                                       "pip install neurocorr-dask", "pip install -e plugins/neurocorr-dask")
    assert run.err.strip() == line, run.err
    bad_input.assert_unchanged(before, bad_input.snapshot(tmp_path))


def test_an_experiment_file_cannot_choose_a_scheduler_through_executor_options(tmp_path):
    """A scheduler's replies are unpickled here: only the command line may name one, by either spelling."""
    import fault_models

    np.save(tmp_path / "probe.npy", np.random.default_rng(5).normal(size=(20, 64)).astype(np.float32))
    (tmp_path / "exp.toml").write_text('[models]\na = "grid_models:mlp_a"\nb = "grid_models:mlp_b"\n\n'
                                       '[compare]\nprobe = "probe.npy"\n'
                                       'executor_option = ["timeout=5", "scheduler=tcp://127.0.0.1:8786"]\n')
    before = bad_input.snapshot(tmp_path)
    run = fault_models.run(["run", "exp.toml"], tmp_path)
    bad_input.assert_user_error(run, "compare.executor_option", "cannot choose a Dask scheduler", "--scheduler ADDR")
    bad_input.assert_unchanged(before, bad_input.snapshot(tmp_path))
