"""Bad-input matrix, trust, for the atlas (issue 13): trust to unpickle is never stored in an
atlas. ``atlas add --trust-pickle`` applies to that command only; ``grid`` and ``predict`` ask for
``--trust-pickle`` on their own command line; an old atlas that stored the flag is read with it
ignored, and a changed model in it is still caught. The pickle payload cases need torch: they are
in plugins/neurocorr-torch/tests/test_bad_input_trust_torch.py; the experiment-file cases are in
the core's tests/test_bad_input_trust.py.

CLI cases run the real command in a child process (bad_input.neurocorr, the core's harness). The
numpy test provider reaches that process as an installed plugin would: through an entry point of
a tiny distribution on PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import bad_input
from neurocorr_atlas.fill import add_model, fill
from neurocorr_atlas.store import Atlas
from neurocorr_core import NeurocorrError
from neurocorr_core.cli import main
from neurocorr_scale.cache import model_fingerprint

#: The core's tests folder: its test models (grid_models, numpy_models) for a child process.
CORE_TESTS = Path(__file__).resolve().parents[3] / "tests"


@pytest.fixture
def place(tmp_path):
    """tmp/site: the numpy test provider as an installed plugin; tmp/exp and tmp/cwd (where the
    command runs, with probe.npy): folders a command must not change. Returns their paths."""
    site = tmp_path / "site" / "neurocorr_numpy_test-0.dist-info"
    site.mkdir(parents=True)
    (site / "METADATA").write_text("Metadata-Version: 2.1\nName: neurocorr-numpy-test\nVersion: 0\n")
    (site / "entry_points.txt").write_text("[neurocorr]\nnumpy-test = numpy_models:plugin\n")
    exp, cwd = tmp_path / "exp", tmp_path / "cwd"
    exp.mkdir()
    cwd.mkdir()
    np.save(cwd / "probe.npy", np.random.default_rng(7).normal(size=(24, 64)).astype(np.float32))

    class Place:
        pass

    p = Place()
    p.root, p.exp, p.cwd = tmp_path, exp, cwd
    path = [str(CORE_TESTS), str(tmp_path / "site"), *filter(None, [os.environ.get("PYTHONPATH")])]
    p.env = {"PYTHONPATH": os.pathsep.join(path), "PYTHONSAFEPATH": "1",
             "NEUROCORR_CACHE_DIR": str(tmp_path / "cache")}
    return p


def run_case(p, argv: list[str]) -> tuple[bad_input.Run, dict, dict]:
    before = bad_input.snapshot(p.exp, p.cwd)
    result = bad_input.neurocorr(argv, cwd=p.cwd, env=p.env)
    after = bad_input.snapshot(p.exp, p.cwd)
    bad_input.no_payload_ran(p.root)
    return result, before, after


# -- trust is never stored in an atlas -------------------------------------------------------------
def _stored_options(path: Path) -> list[dict]:
    with sqlite3.connect(path) as db:
        rows = [json.loads(r[0]) for r in db.execute("SELECT options FROM models")]
    db.close()
    return rows


def test_a_failed_atlas_add_leaves_no_atlas(place):
    result, before, after = run_case(place, ["atlas", "add", "builders_absent:net", "--accuracy", "0.9",
                                             "--trust-pickle", "--atlas", "atlas.db"])
    bad_input.assert_user_error(result, "'builders_absent:net'", "cannot import", "install it")
    bad_input.assert_unchanged(before, after)


def test_atlas_add_does_not_store_trust(place):
    db = place.cwd / "atlas.db"
    result = bad_input.neurocorr(["atlas", "add", "grid_models:mlp_a", "--accuracy", "0.9", "--trust-pickle",
                                "--atlas", str(db)], cwd=place.cwd, env=place.env)
    assert result.code == 0, result.err
    assert _stored_options(db) == [{}]


def test_an_old_atlas_with_stored_trust_is_read_with_it_ignored(tmp_path, pm):
    """An atlas from before this rule stored trust_pickle among the options and fingerprinted the
    model with it: the option is dropped, and the model is not reported as changed."""
    probe = np.random.default_rng(3).normal(size=(12, 64)).astype(np.float32)
    with Atlas(tmp_path / "old.db", create=True) as atlas:
        for name in ("mlp_a", "mlp_b"):
            add_model(atlas, f"grid_models:{name}", name, measurements={"accuracy": 0.9}, plugin_manager=pm)
        legacy = model_fingerprint("grid_models:mlp_a", "numpy-test", {"trust_pickle": True})
        with atlas.db:
            atlas.db.execute("UPDATE models SET options = ?, fingerprint = ? WHERE name = 'mlp_a'",
                             (json.dumps({"trust_pickle": True}), legacy))
        assert atlas.model("mlp_a").options == {} and atlas.model("mlp_a").legacy_trust
        result = fill(atlas, probe, plugin_manager=pm)
        assert result.computed == [("mlp_a", "mlp_b")]


def test_a_changed_model_is_still_caught_in_an_old_atlas(tmp_path, pm):
    probe = np.random.default_rng(3).normal(size=(12, 64)).astype(np.float32)
    with Atlas(tmp_path / "old.db", create=True) as atlas:
        for name in ("mlp_a", "mlp_b"):
            add_model(atlas, f"grid_models:{name}", name, measurements={"accuracy": 0.9}, plugin_manager=pm)
        with atlas.db:
            atlas.db.execute("UPDATE models SET options = ?, fingerprint = 'stale' WHERE name = 'mlp_a'",
                             (json.dumps({"trust_pickle": True}),))
        with pytest.raises(NeurocorrError, match="model 'mlp_a' .*has changed since it was added"):
            fill(atlas, probe, plugin_manager=pm)


def test_grid_command_takes_trust_on_its_own_command_line(place):
    db = place.cwd / "atlas.db"
    for name in ("mlp_a", "mlp_b"):
        assert main_ok(place, ["atlas", "add", f"grid_models:{name}", "--accuracy", "0.9", "--atlas", str(db)])
    result = bad_input.neurocorr(["grid", "--probe", "probe.npy", "--atlas", str(db), "--trust-pickle", "--quiet"],
                               cwd=place.cwd, env=place.env)
    assert result.code == 0, result.err
    assert "1 pair(s) computed" in result.out
    assert _stored_options(db) == [{}, {}]


def main_ok(place, argv: list[str]) -> bool:
    result = bad_input.neurocorr(argv, cwd=place.cwd, env=place.env)
    assert result.code == 0, result.err
    return True


def test_grid_and_predict_help_say_trust_is_asked_each_time(capsys):
    for command in (["grid", "--help"], ["predict", "--help"]):
        with pytest.raises(SystemExit):
            main(command)
        out = " ".join(capsys.readouterr().out.split())
        assert "--trust-pickle" in out
        assert "does not remember it" in out
