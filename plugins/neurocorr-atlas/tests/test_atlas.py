"""The reference atlas: schema and its version, models with measurements, duplicate names,
comparisons filled by a grid (equal to compare()), a killed grid that resumes without recomputing
finished pairs, and a scheduler that cannot be reached (nothing written)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neurocorr_atlas.fill import add_model, fill
from neurocorr_atlas.store import SCHEMA_VERSION, Atlas, atlas_path
from neurocorr_core import NeurocorrError, compare
from neurocorr_scale.grid import GridConfig

#: The core's tests folder: its test models (grid_models, numpy_models) for a child process.
CORE_TESTS = Path(__file__).resolve().parents[3] / "tests"
NAMES = ["mlp_a", "mlp_b", "mlp_c", "cnn_a", "cnn_b"]


@pytest.fixture
def probe():
    return np.random.default_rng(3).normal(size=(20, 1, 8, 8)).astype(np.float32)


@pytest.fixture
def atlas(tmp_path, pm):
    with Atlas(tmp_path / "atlas.db", create=True) as at:
        for i, name in enumerate(NAMES):
            add_model(at, f"grid_models:{name}", name, measurements={"accuracy": 0.9 + i / 100},
                      plugin_manager=pm)
        yield at


# -- the file ----------------------------------------------------------------------------------------
def test_schema_version_is_written(tmp_path):
    Atlas(tmp_path / "a.db", create=True).close()
    db = sqlite3.connect(tmp_path / "a.db")
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"schema_version", "models", "measurements", "configurations", "comparisons"}


def test_an_atlas_from_a_newer_schema_is_refused(tmp_path):
    Atlas(tmp_path / "a.db", create=True).close()
    with sqlite3.connect(tmp_path / "a.db") as db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.close()
    with pytest.raises(NeurocorrError, match=rf"has schema version {SCHEMA_VERSION + 1}, written by a newer "
                                             rf"neurocorr; this one reads version {SCHEMA_VERSION} at most\. "
                                             r"Upgrade neurocorr-atlas"):
        Atlas(tmp_path / "a.db")


def test_files_that_are_not_atlases(tmp_path):
    (tmp_path / "text.db").write_text("hello, not a database" * 100)
    with pytest.raises(NeurocorrError, match="is not an atlas \\(not a SQLite database"):
        Atlas(tmp_path / "text.db")
    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    with pytest.raises(NeurocorrError, match="is a SQLite database but not a neurocorr atlas"):
        Atlas(tmp_path / "other.db")
    with pytest.raises(NeurocorrError, match="no atlas at .*missing.db; create one by adding a model"):
        Atlas(tmp_path / "missing.db")
    with pytest.raises(NeurocorrError, match="folder .*nowhere does not exist"):
        Atlas(tmp_path / "nowhere" / "a.db", create=True)


def test_locations(tmp_path):
    assert atlas_path("sqlite:///rel/a.db") == Path("rel/a.db")
    assert atlas_path("sqlite:////abs/a.db") == Path("/abs/a.db")
    assert atlas_path(tmp_path / "a.db") == tmp_path / "a.db"
    with pytest.raises(NeurocorrError, match="only SQLite atlases are supported so far"):
        atlas_path("postgresql://host/db")
    with pytest.raises(NeurocorrError, match="write a SQLite URL as sqlite:///relative"):
        atlas_path("sqlite://a.db")


# -- models ------------------------------------------------------------------------------------------
def test_models_keep_their_measurements_and_order(atlas):
    models = atlas.models()
    assert [m.name for m in models] == NAMES
    assert models[2].measurements == {"accuracy": pytest.approx(0.92)}
    assert models[0].framework == "numpy-test" and models[0].source == "grid_models:mlp_a"
    assert models[0].fingerprint and len(models[0].fingerprint) == 64


def test_duplicate_model_names_are_refused(atlas, pm):
    with pytest.raises(NeurocorrError, match="already has a model named 'mlp_b'; choose another --name, or "
                                             "remove the old one first: neurocorr atlas rm mlp_b"):
        add_model(atlas, "grid_models:mlp_d", "mlp_b", measurements={"accuracy": 0.5}, plugin_manager=pm)
    assert atlas.model("mlp_b").measurements == {"accuracy": pytest.approx(0.91)}


@pytest.mark.parametrize("measurements, message", [({"accuracy": "high"}, "accuracy='high' is not a number"),
                                                   ({"accuracy": float("nan")}, "must be a finite number"),
                                                   ({"bad name": 1.0}, "must be letters, digits")])
def test_bad_measurements(atlas, pm, measurements, message):
    with pytest.raises(NeurocorrError, match=message):
        add_model(atlas, "grid_models:mlp_d", "d", measurements=measurements, plugin_manager=pm)
    assert "d" not in [m.name for m in atlas.models()]


def test_remove_takes_the_comparisons_along(atlas, pm, probe):
    fill(atlas, probe, plugin_manager=pm)
    key = GridConfig().key(atlas_probe(probe))
    atlas.remove("mlp_a")
    assert [m.name for m in atlas.models()] == NAMES[1:]
    assert all("mlp_a" not in pair for pair in atlas.done(key))
    with pytest.raises(NeurocorrError, match="no model named 'mlp_a'; its models: mlp_b"):
        atlas.remove("mlp_a")


def atlas_probe(probe):
    from neurocorr_core import load_probe

    return load_probe(probe)


# -- grids ---------------------------------------------------------------------------------------------
def test_fill_stores_every_pair_as_compare_scores_it(atlas, pm, probe):
    result = fill(atlas, probe, plugin_manager=pm)
    assert len(result.computed) == 10
    key = GridConfig().key(atlas_probe(probe))
    done = atlas.done(key)
    assert len(done) == 10
    direct = compare("grid_models:mlp_b", "grid_models:cnn_a", probe, plugin_manager=pm)
    # the grid and compare() reach the scores along other paths: equal to float32 rounding
    assert done[("mlp_b", "cnn_a")] == pytest.approx((direct.score.a_to_b, direct.score.b_to_a), abs=1e-6)
    matrix = atlas.symmetric(key, NAMES)
    assert matrix[1, 3] == matrix[3, 1] == pytest.approx(direct.score.symmetric, abs=1e-6)
    assert np.isnan(np.diag(matrix)).all() and np.isfinite(matrix[~np.eye(5, dtype=bool)]).all()
    [config] = atlas.configurations()
    assert config["pairs"] == 10 and config["samples"] == 20 and config["config"]["metric"] == "pearson"
    assert fill(atlas, probe, plugin_manager=pm).computed == []  # nothing left to do


def test_another_configuration_is_another_set_of_pairs(atlas, pm, probe):
    fill(atlas, probe, plugin_manager=pm)
    other = fill(atlas, probe, config=GridConfig(depth_penalty="none"), names=["mlp_a", "cnn_a"],
                 plugin_manager=pm)
    assert other.computed == [("mlp_a", "cnn_a")] and len(atlas.configurations()) == 2
    fill(atlas, probe[:10], names=["mlp_a", "cnn_a"], plugin_manager=pm)  # another probe: another key
    assert len(atlas.configurations()) == 3


def test_a_changed_model_is_not_compared_with_stale_measurements(tmp_path, pm, probe, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    module = tmp_path / "atlas_changing_model.py"
    module.write_text("from numpy_models import mlp\n\ndef build():\n    return mlp(0, [5], n_in=64)\n")
    with Atlas(tmp_path / "a.db", create=True) as at:
        add_model(at, "atlas_changing_model:build", "changing", measurements={}, plugin_manager=pm)
        add_model(at, "grid_models:mlp_a", "a", measurements={}, plugin_manager=pm)
        module.write_text("from numpy_models import mlp\n\ndef build():\n    return mlp(1, [5], n_in=64)\n")
        with pytest.raises(NeurocorrError, match="model 'changing' .* has changed since it was added to the "
                                                 "atlas.*neurocorr atlas rm changing"):
            fill(at, probe, plugin_manager=pm)
        assert at.configurations() == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_writes_nothing(atlas, pm, probe, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setenv("NEUROCORR_DASK_TIMEOUT", "2")
    with pytest.raises(NeurocorrError, match="cannot reach the Dask scheduler"):
        fill(atlas, probe, executor="dask", scheduler=f"tcp://127.0.0.1:{free_port()}", plugin_manager=pm)
    assert atlas.configurations() == [] and atlas.done(GridConfig().key(atlas_probe(probe))) == {}


KILLED_GRID = """
import sys, time
sys.path.insert(0, {tests!r})
from neurocorr_core import PluginManager, plugins
from neurocorr_atlas.store import Atlas
from neurocorr_core.cli import main
from numpy_models import plugin

pm = PluginManager()
pm.register(plugin, "numpy-test")
plugins._default = pm
record = Atlas.record

def slow_record(self, *args, **kwargs):  # each committed pair leaves time to be killed
    record(self, *args, **kwargs)
    time.sleep(0.4)

Atlas.record = slow_record
sys.exit(main(["grid", "--atlas", {atlas!r}, "--probe", {probe!r}, "--no-cache"]))
"""


def test_a_killed_grid_resumes_without_recomputing_finished_pairs(atlas, pm, probe, tmp_path, monkeypatch,
                                                                  capsys):
    np.save(tmp_path / "probe.npy", probe)
    script = tmp_path / "grid.py"
    script.write_text(KILLED_GRID.format(tests=str(CORE_TESTS), atlas=str(atlas.path),
                                         probe=str(tmp_path / "probe.npy")))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=tmp_path)
    try:
        seen = []
        deadline = time.time() + 60
        while len(seen) < 2 and time.time() < deadline:  # two pairs reported: they are committed
            line = proc.stdout.readline()
            assert line, "the grid ended before it could be killed"
            if " vs " in line:
                seen.append(line)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    key = GridConfig().key(atlas_probe(probe))
    before = atlas.db.execute("SELECT model_a, model_b, a_to_b, b_to_a, created FROM comparisons").fetchall()
    assert 2 <= len(before) < 10  # killed mid-way
    from neurocorr_core import plugins

    monkeypatch.setattr(plugins, "_default", pm)
    result = fill(atlas, np.load(tmp_path / "probe.npy"), plugin_manager=pm)
    finished = {(a, b) for a, b, *_ in before}
    assert len(result.computed) == 10 - len(before)  # only the missing pairs ran
    assert not finished & {tuple(p) for p in result.computed}
    after = atlas.db.execute("SELECT model_a, model_b, a_to_b, b_to_a, created FROM comparisons").fetchall()
    assert set(before) <= set(after) and len(after) == 10  # finished pairs untouched
    assert len(atlas.done(key)) == 10
