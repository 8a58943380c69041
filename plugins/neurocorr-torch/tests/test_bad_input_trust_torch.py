"""Bad-input matrix, trust, with real pickles (issue 13): the torch provider unpickles only with
trust_pickle, and that trust is the decision of whoever runs the command, each time.

- An atlas whose models were added with ``--trust-pickle`` (or an older atlas that stored the
  flag): ``grid`` and ``predict`` without ``--trust-pickle`` refuse the pickles with one line that
  says to pass it, and a pickle whose ``__reduce__`` would create PWNED never runs.
- ``neurocorr run``: a trust key in the experiment file is refused without ``--trust-pickle`` on
  the command line; pickled models are refused; a ``torch.py`` beside an experiment of
  TorchScript models is never imported (the bug: the experiment folder went first on sys.path
  before the provider imported torch).

The core harness (tests/bad_input.py) is shared with the core's matrix.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models import small_mlp

sys.path.append(str(Path(__file__).resolve().parents[3] / "tests"))  # the core matrix harness
import bad_input
from neurocorr_atlas.fill import add_model
from neurocorr_atlas.store import Atlas


class Payload:
    """Unpickling this runs ``open(target/PWNED, 'w')``: what a hostile pickle does."""

    def __init__(self, target: Path) -> None:
        self.code = bad_input.payload(target)

    def __reduce__(self):
        return (exec, (self.code,))


def hostile_pickle(path: Path, marks: Path) -> None:
    torch.save(Payload(marks), path)


@pytest.fixture
def shared(tmp_path):
    """tmp/shared: three pickled reference models added to atlas.db with --trust-pickle (by their
    owner, for that command), a TorchScript new model and a probe; tmp/cwd: where commands run."""
    folder = tmp_path / "shared"
    folder.mkdir()
    (tmp_path / "cwd").mkdir()
    np.save(folder / "probe.npy", np.random.default_rng(5).normal(size=(16, 64)).astype(np.float32))
    torch.jit.script(small_mlp(9)).save(folder / "new.pt")
    with Atlas(folder / "atlas.db", create=True) as atlas:
        for i in range(3):
            torch.save(small_mlp(i), folder / f"ref{i}.pt")
            add_model(atlas, folder / f"ref{i}.pt", f"ref{i}", measurements={"accuracy": 0.8 + i / 20},
                      options={"trust_pickle": True})
    return tmp_path


def env(root: Path) -> dict[str, str]:
    return {"NEUROCORR_CACHE_DIR": str(root / "cache"), "PYTHONSAFEPATH": "1"}


def case(root: Path, argv: list[str]) -> bad_input.Run:
    """Run ``neurocorr ARGV`` in tmp/cwd; nothing under tmp/shared or tmp/cwd may change."""
    before = bad_input.snapshot(root / "shared", root / "cwd")
    result = bad_input.neurocorr(argv, cwd=root / "cwd", env=env(root))
    bad_input.assert_unchanged(before, bad_input.snapshot(root / "shared", root / "cwd"))
    bad_input.no_payload_ran(root)
    return result


def stored_options(db: Path) -> list[dict]:
    with sqlite3.connect(db) as conn:
        rows = [json.loads(r[0]) for r in conn.execute("SELECT options FROM models ORDER BY rowid")]
    conn.close()
    return rows


def test_the_atlas_does_not_store_the_trust(shared):
    assert stored_options(shared / "shared" / "atlas.db") == [{}, {}, {}]


@pytest.mark.parametrize("legacy", [False, True], ids=["atlas", "old-atlas-with-stored-trust"])
@pytest.mark.parametrize("command", [
    ["grid", "--probe", "PROBE", "--atlas", "ATLAS"],
    ["predict", "NEW", "--probe", "PROBE", "--atlas", "ATLAS"],
    ["predict", "--leave-one-out", "--probe", "PROBE", "--atlas", "ATLAS"],
], ids=["grid", "predict", "leave-one-out"])
def test_grid_and_predict_refuse_pickles_without_trust(shared, command, legacy):
    folder = shared / "shared"
    if legacy:  # what an older neurocorr wrote for 'atlas add --trust-pickle'
        with sqlite3.connect(folder / "atlas.db") as db:
            db.execute("UPDATE models SET options = ?", (json.dumps({"trust_pickle": True}),))
        db.close()
    hostile_pickle(folder / "ref0.pt", shared)  # the shared file was swapped for a hostile one
    names = {"PROBE": str(folder / "probe.npy"), "ATLAS": str(folder / "atlas.db"), "NEW": str(folder / "new.pt")}
    result = case(shared, [names.get(arg, arg) for arg in command])
    bad_input.assert_user_error(result, "model 'ref0'", "pickled model", "--trust-pickle")


def test_with_trust_on_the_command_line_the_grid_runs(shared):
    folder = shared / "shared"
    argv = ["grid", "--probe", str(folder / "probe.npy"), "--atlas", str(folder / "atlas.db"), "--quiet"]
    refused = bad_input.neurocorr(argv, cwd=shared / "cwd", env=env(shared))
    bad_input.assert_user_error(refused, "--trust-pickle")
    result = bad_input.neurocorr([*argv, "--trust-pickle"], cwd=shared / "cwd", env=env(shared))
    assert result.code == 0, result.err
    assert "3 pair(s) computed" in result.out
    assert stored_options(folder / "atlas.db") == [{}, {}, {}]


EXPERIMENT = """
[models]
a = "{a}"
b = "{b}"

[compare]
probe = "probe.npy"
quiet = true
{extra}
"""


@pytest.mark.parametrize("extra, words", [
    ("trust_pickle_a = true", ["compare.trust_pickle_a", "cannot allow unpickling", "--trust-pickle"]),
    ("trust_pickle_b = true", ["compare.trust_pickle_b", "cannot allow unpickling", "--trust-pickle"]),
    ("", ["hostile_a.pt", "pickled model", "--trust-pickle"]),
], ids=["file-trusts-a", "file-trusts-b", "no-trust"])
def test_an_experiment_of_hostile_pickles(shared, extra, words):
    folder = shared / "shared"
    hostile_pickle(folder / "hostile_a.pt", shared)
    hostile_pickle(folder / "hostile_b.pt", shared)
    (folder / "experiment.toml").write_text(EXPERIMENT.format(a="hostile_a.pt", b="hostile_b.pt", extra=extra))
    result = case(shared, ["run", str(folder / "experiment.toml")])
    bad_input.assert_user_error(result, *words)


def test_torch_py_beside_an_experiment_of_torchscript_models(shared):
    folder = shared / "shared"
    torch.jit.script(small_mlp(3)).save(folder / "other.pt")
    (folder / "torch.py").write_text(bad_input.payload(shared))
    (folder / "experiment.toml").write_text(EXPERIMENT.format(a="new.pt", b="other.pt", extra=""))
    result = case(shared, ["run", str(folder / "experiment.toml")])
    assert "Traceback" not in result.err and result.code == 0, result.err
    assert "score A->B" in result.out

