"""Bad-input matrix, trust: files from others are data, never code (issue 13).

- Shadow files (torch.py, numpy.py, neurocorr_core.py, json.py) with a payload next to an
  experiment file or in the current folder never run, and the command still works.
- A ``module:callable`` reference may name a module next to the experiment (the documented
  feature), but never one that shadows an installed package, and ``sys.path`` is as it was after.
- A builder that raises, returns None or an int, or a module that fails to import: one line that
  names the reference and the side.
- Trust to unpickle is never read from a file: an experiment's trust_pickle keys are refused
  without ``--trust-pickle`` on the command line. The atlas's cases (an atlas never stores trust)
  are in plugins/neurocorr-atlas/tests/test_bad_input_trust_atlas.py; the pickle payload cases
  need torch: they are in plugins/neurocorr-torch/tests/test_bad_input_trust_torch.py.

CLI cases run the real command in a child process (bad_input.neurocorr). The numpy test provider
reaches that process as an installed plugin would: through an entry point of a tiny distribution
on PYTHONPATH. PYTHONSAFEPATH=1 keeps ``python -m`` from putting the current folder first on
sys.path, as the installed ``neurocorr`` command does not either (otherwise Python itself would
import a cwd ``json.py`` before neurocorr runs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import bad_input
from neurocorr_core import NeurocorrError, config, config_schema, plugins
from neurocorr_core.cli import _parser, main
from neurocorr_core.models import resolve_model

TESTS = Path(__file__).resolve().parent
#: Shadow file names: what a user fears (torch, numpy, our own package, json) and what really gets
#: imported late, after the run starts: colorsys by the local model module below, secrets by the
#: standard library during a comparison. A folder put first on sys.path would run those two.
SHADOWS = ["torch", "numpy", "neurocorr_core", "json", "colorsys", "secrets"]

#: A model module next to the experiment (or in the current folder): it imports the names the
#: shadow files take, so a shadow that wins the import would run its payload.
LOCAL_NETS = """
import colorsys
import json
import numpy

from numpy_models import mlp

SETTINGS = json.loads('{"seed": 4}')


def net_a():
    return mlp(SETTINGS["seed"], [6, 5], n_in=64)


def net_b():
    return mlp(numpy.int64(5).item() + int(colorsys.rgb_to_hsv(0, 0, 0)[0]), [7], n_in=64)
"""

BUILDERS = """
from numpy_models import mlp


def raises():
    raise ValueError("boom in the builder")


def returns_none():
    mlp(0, [3], n_in=64)


def returns_int():
    return 7


def good():
    return mlp(0, [6, 5], n_in=64)
"""

EXPERIMENT = """
[models]
a = "{a}"
b = "{b}"

[compare]
probe = "probe.npy"
quiet = true
{extra}
"""


# -- the folders of a case --------------------------------------------------------------------------
@pytest.fixture
def place(tmp_path):
    """tmp/site: the numpy test provider as an installed plugin; tmp/exp: the experiment folder
    (with probe.npy); tmp/cwd: where the command runs. Returns a namespace of those paths."""
    site = tmp_path / "site" / "neurocorr_numpy_test-0.dist-info"
    site.mkdir(parents=True)
    (site / "METADATA").write_text("Metadata-Version: 2.1\nName: neurocorr-numpy-test\nVersion: 0\n")
    (site / "entry_points.txt").write_text("[neurocorr]\nnumpy-test = numpy_models:plugin\n")
    exp, cwd = tmp_path / "exp", tmp_path / "cwd"
    exp.mkdir()
    cwd.mkdir()
    probe = np.random.default_rng(7).normal(size=(24, 64)).astype(np.float32)
    np.save(exp / "probe.npy", probe)
    np.save(cwd / "probe.npy", probe)

    class Place:
        pass

    p = Place()
    p.root, p.exp, p.cwd = tmp_path, exp, cwd
    path = [str(TESTS), str(tmp_path / "site"), *filter(None, [os.environ.get("PYTHONPATH")])]
    p.env = {"PYTHONPATH": os.pathsep.join(path), "PYTHONSAFEPATH": "1",
             "NEUROCORR_CACHE_DIR": str(tmp_path / "cache")}
    return p


def experiment(folder: Path, a: str, b: str, extra: str = "") -> Path:
    path = folder / "experiment.toml"
    path.write_text(EXPERIMENT.format(a=a, b=b, extra=extra))
    return path


def shadow(folder: Path, name: str, marks: Path) -> None:
    """``folder/NAME.py`` that creates ``marks/PWNED`` if it is ever imported."""
    (folder / f"{name}.py").write_text(bad_input.payload(marks) + "def net():\n    return None\n")


def run_case(p, argv: list[str], **env: str) -> tuple[bad_input.Run, dict, dict]:
    before = bad_input.snapshot(p.exp, p.cwd)
    result = bad_input.neurocorr(argv, cwd=p.cwd, env={**p.env, **env})
    after = bad_input.snapshot(p.exp, p.cwd)
    bad_input.no_payload_ran(p.root)
    return result, before, after


def assert_works(result: bad_input.Run) -> None:
    assert "Traceback" not in result.err, result.err
    assert result.code == 0, f"exit {result.code}\n{result.err}"
    assert "score A->B" in result.out


# -- shadow files never run -----------------------------------------------------------------------
@pytest.mark.parametrize("name", SHADOWS)
def test_shadow_next_to_an_experiment_of_installed_references(place, name):
    """The original bug: the experiment's folder went first on sys.path for every import."""
    shadow(place.exp, name, place.root)
    path = experiment(place.exp, "grid_models:mlp_a", "grid_models:mlp_b")
    result, before, after = run_case(place, ["run", str(path)])
    assert_works(result)
    bad_input.assert_unchanged(before, after)


@pytest.mark.parametrize("name", SHADOWS)
def test_shadow_beside_a_local_reference_module(place, name):
    """The reference's own module lies next to the experiment (documented), and imports json and
    numpy: it gets the installed ones, not the shadow beside it; no __pycache__ is left there."""
    (place.exp / "local_nets.py").write_text(LOCAL_NETS)
    shadow(place.exp, name, place.root)
    path = experiment(place.exp, "local_nets:net_a", "local_nets:net_b")
    result, before, after = run_case(place, ["run", str(path)], PYTHONDONTWRITEBYTECODE="")  # Python's default
    assert_works(result)
    assert "local_nets:net_a" in result.out
    bad_input.assert_unchanged(before, after)


@pytest.mark.parametrize("name", SHADOWS)
def test_shadow_in_the_current_folder(place, name):
    """``compare`` with references to a module in the current folder beside a shadow file."""
    (place.cwd / "cwd_nets.py").write_text(LOCAL_NETS)
    shadow(place.cwd, name, place.root)
    result, before, after = run_case(place, ["compare", "cwd_nets:net_a", "cwd_nets:net_b", "--probe",
                                             "probe.npy", "--quiet"])
    assert_works(result)
    bad_input.assert_unchanged(before, after)


# -- a reference whose module would replace an installed one is refused -----------------------------
@pytest.mark.parametrize("where, name, argv, side", [
    ("exp", "json", ["run", "EXP"], "model A"),
    ("exp", "torch", ["run", "EXP"], "model A"),
    ("cwd", "numpy", ["compare", "grid_models:mlp_a", "numpy:net", "--probe", "probe.npy"], "model B"),
    ("cwd", "neurocorr_core", ["compare", "neurocorr_core:net", "grid_models:mlp_b", "--probe", "probe.npy"],
     "model A"),
])
def test_reference_to_a_module_that_shadows_an_installed_one(place, where, name, argv, side):
    folder = place.exp if where == "exp" else place.cwd
    shadow(folder, name, place.root)
    path = experiment(place.exp, f"{name}:net", "grid_models:mlp_b")
    argv = [str(path) if arg == "EXP" else arg for arg in argv]
    result, before, after = run_case(place, argv)
    bad_input.assert_user_error(result, side, f"{name}:net", f"installed module '{name}'", "rename")
    bad_input.assert_unchanged(before, after)


# -- builders that fail ----------------------------------------------------------------------------
@pytest.mark.parametrize("a, b, words", [
    ("builders:raises", "grid_models:mlp_b", ["model A", "'builders:raises'", "ValueError",
                                              "boom in the builder", "fix the callable"]),
    ("grid_models:mlp_a", "builders:returns_none", ["model B", "'builders:returns_none'", "NoneType",
                                                    "not a model", "must build and return"]),
    ("builders:returns_int", "grid_models:mlp_b", ["model A", "'builders:returns_int'", "returned int 7",
                                                   "not a model"]),
    ("grid_models:mlp_a", "builders:missing", ["model B", "'builders:missing'", "no attribute 'missing'"]),
    ("broken:net", "grid_models:mlp_b", ["model A", "'broken:net'", "RuntimeError", "broken on import",
                                         "fix the module"]),
])
def test_builder_failures_name_the_reference_and_side(place, a, b, words):
    (place.exp / "builders.py").write_text(BUILDERS)
    (place.exp / "broken.py").write_text("raise RuntimeError('broken on import')\n")
    path = experiment(place.exp, a, b)
    result, before, after = run_case(place, ["run", str(path)])
    bad_input.assert_user_error(result, *words)
    bad_input.assert_unchanged(before, after)


# -- trust is never read from an experiment file ---------------------------------------------------
@pytest.mark.parametrize("extra, key", [
    ("trust_pickle_a = true", "compare.trust_pickle_a"),
    ("trust-pickle-b = true", "compare.trust-pickle-b"),
    ("trust_pickle = true", "compare.trust_pickle"),
])
def test_experiment_cannot_grant_trust(place, extra, key):
    path = experiment(place.exp, "grid_models:mlp_a", "grid_models:mlp_b", extra)
    result, before, after = run_case(place, ["run", str(path)])
    bad_input.assert_user_error(result, key, "cannot allow unpickling", "pass --trust-pickle on the command line")
    bad_input.assert_unchanged(before, after)


def test_trust_key_of_the_wrong_type(place):
    path = experiment(place.exp, "grid_models:mlp_a", "grid_models:mlp_b", 'trust_pickle_a = "yes"')
    result, before, after = run_case(place, ["run", str(path), "--trust-pickle"])
    bad_input.assert_user_error(result, "compare.trust_pickle_a", "must be true or false")
    bad_input.assert_unchanged(before, after)


# -- an experiment file chooses no place outside its folder, and no scheduler ------------------------
def _escape_link(place):
    (place.root / "victim").mkdir(exist_ok=True)
    (place.exp / "out").symlink_to(place.root / "victim")


@pytest.mark.parametrize("extra, setup, key", [
    ('[outputs]\njson = "../victim/r.json"', None, "outputs.json"),
    ('[outputs]\nreport = "{root}/victim/r.html"', None, "outputs.report"),
    ('[outputs]\ncsv = "out/r.csv"', _escape_link, "outputs.csv"),
    ('cache_dir = "../victim/cache"', None, "compare.cache_dir"),
], ids=["parent folder", "absolute path", "through a link", "cache folder"])
def test_experiment_writes_nothing_outside_its_folder(place, extra, setup, key):
    victim = place.root / "victim"
    victim.mkdir(exist_ok=True)
    (victim / "r.json").write_text("yesterday's result")
    if setup is not None:
        setup(place)
    path = experiment(place.exp, "grid_models:mlp_a", "grid_models:mlp_b", extra.format(root=place.root))
    before_victim = bad_input.snapshot(victim)
    result, before, after = run_case(place, ["run", str(path)])
    bad_input.assert_user_error(result, key, "outside the experiment's folder", "to write elsewhere")
    bad_input.assert_unchanged(before, after)
    bad_input.assert_unchanged(before_victim, bad_input.snapshot(victim))


def test_experiment_outputs_inside_its_folder_and_the_command_line_anywhere(place):
    (place.exp / "results").mkdir()
    path = experiment(place.exp, "grid_models:mlp_a", "grid_models:mlp_b",
                      'cache_dir = "cache"\n[outputs]\njson = "results/r.json"')
    elsewhere = place.root / "elsewhere.csv"
    result, _, _ = run_case(place, ["run", str(path), "--csv", str(elsewhere)])
    assert_works(result)
    assert (place.exp / "results" / "r.json").is_file() and elsewhere.is_file()
    assert any((place.exp / "cache").rglob("*.act")), "the cache folder is relative to the experiment"


def test_experiment_cannot_choose_a_dask_scheduler(place):
    path = experiment(place.exp, "grid_models:mlp_a", "grid_models:mlp_b",
                      'executor = "dask"\nscheduler = "tcp://127.0.0.1:8786"')
    result, before, after = run_case(place, ["run", str(path)])
    bad_input.assert_user_error(result, "compare.scheduler", "cannot choose a Dask scheduler", "--scheduler ADDR")
    bad_input.assert_unchanged(before, after)


def test_command_line_trust_makes_the_key_redundant(place):
    path = experiment(place.exp, "grid_models:mlp_a", "grid_models:mlp_b", "trust_pickle_a = true")
    result, before, after = run_case(place, ["run", str(path), "--trust-pickle"])
    assert_works(result)
    bad_input.assert_unchanged(before, after)


def test_trust_comes_only_from_the_command_line():
    parser = config.subparser(_parser(), "compare")
    folder = Path(__file__).parent
    source = folder / "no_such_dir" / "x.toml"
    options = config_schema.compare_options(parser)
    checker = config_schema.ConfigChecker(source, options, plugins.get_plugin_manager())
    with pytest.raises(NeurocorrError, match=r"compare\.trust_pickle_b: an experiment file cannot allow"):
        checker.without_trust({"trust_pickle_b": True})
    assert checker.without_trust({"trust_pickle_a": False, "probe": "x"}) == {"probe": "x"}
    trusted = config_schema.ConfigChecker(source, options, plugins.get_plugin_manager(), True)
    assert trusted.without_trust({"trust_pickle_a": True}) == {}


# -- in process: sys.path as it was ---------------------------------------------------------------
@pytest.fixture
def cli_pm(pm, monkeypatch):
    monkeypatch.setattr(plugins, "_default", pm)
    return pm


def _run_in_process(path: Path, **load):
    parser = config.subparser(_parser(), "compare")
    from neurocorr_core.commands import comparison

    return config.run(config.load(path, parser, **load), comparison, quiet=True)


def test_a_local_reference_works_and_sys_path_is_restored(tmp_path, cli_pm, monkeypatch):
    exp = tmp_path / "exp_ok"
    exp.mkdir()
    (exp / "inproc_nets_ok.py").write_text(LOCAL_NETS)
    np.save(exp / "probe.npy", np.random.default_rng(1).normal(size=(20, 64)).astype(np.float32))
    monkeypatch.chdir(tmp_path)
    path = experiment(exp, "inproc_nets_ok:net_a", "inproc_nets_ok:net_b")
    before, bytecode, environ = list(sys.path), sys.dont_write_bytecode, dict(os.environ)
    results = _run_in_process(path)
    assert sys.path == before and sys.dont_write_bytecode == bytecode and dict(os.environ) == environ
    assert results["pearson"].model_a == "inproc_nets_ok:net_a"
    assert 0 < results["pearson"].score.symmetric <= 1
    assert not (exp / "__pycache__").exists()


def test_sys_path_is_restored_when_the_builder_fails(tmp_path, cli_pm, monkeypatch):
    exp = tmp_path / "exp_fail"
    exp.mkdir()
    (exp / "inproc_builders.py").write_text(BUILDERS)
    np.save(exp / "probe.npy", np.random.default_rng(1).normal(size=(20, 64)).astype(np.float32))
    monkeypatch.chdir(tmp_path)
    path = experiment(exp, "grid_models:mlp_a", "inproc_builders:raises")
    before = list(sys.path)
    state = bad_input.snapshot(exp)
    with pytest.raises(NeurocorrError, match=r"model B 'inproc_builders:raises': building the model raised "
                                             r"ValueError: boom in the builder"):
        _run_in_process(path)
    assert sys.path == before
    bad_input.assert_unchanged(state, bad_input.snapshot(exp))


def test_cwd_reference_in_process(tmp_path, monkeypatch):
    (tmp_path / "inproc_cwd_nets.py").write_text(BUILDERS)
    shadow(tmp_path, "json", tmp_path)
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    assert type(resolve_model("inproc_cwd_nets:good")).__name__ == "NumpyNet"
    with pytest.raises(NeurocorrError, match=r"model 'json:net': .*json\.py has the name of the installed "
                                             r"module 'json'.*Rename the local module"):
        resolve_model("json:net")
    assert sys.path == before
    bad_input.no_payload_ran(tmp_path)
    assert not sys.modules["json"].__file__.startswith(str(tmp_path))


def test_help_says_trust_is_asked_each_time(capsys):
    """(grid and predict: plugins/neurocorr-atlas/tests/test_bad_input_trust_atlas.py)"""
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--trust-pickle" in out and "cannot ask for this itself" in out
