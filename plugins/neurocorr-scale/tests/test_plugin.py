"""Scale-out is a plugin package: without it (here: blocked with NEUROCORR_DISABLE_PLUGINS) a
comparison still streams in one process, ``neurocorr --help`` lists no ``cache``, and shards, the
cache and the ``local`` executor each say which package brings them. The real command runs in a
child process, as a user would run it."""

from __future__ import annotations

import numpy as np
import pytest

import bad_input
from bad_input import listed_commands
from fault_models import run_cli

BLOCKED = {"NEUROCORR_DISABLE_PLUGINS": "scale,dask"}
MODELS = ["grid_models:mlp_a", "grid_models:mlp_b"]


@pytest.fixture
def folder(tmp_path):
    np.save(tmp_path / "probe.npy", np.random.default_rng(5).normal(size=(20, 64)).astype(np.float32))
    return tmp_path


def test_without_the_package_a_comparison_still_runs_in_one_process(folder):
    result = run_cli(["compare", *MODELS, "--probe", "probe.npy", "--quiet", "--json", "out.json"], folder, **BLOCKED)
    assert result.code == 0, result.err
    assert "executor" not in (folder / "out.json").read_text()


def test_without_the_package_help_lists_no_cache_command_and_it_names_the_package(folder):
    shown = run_cli(["--help"], folder, **BLOCKED)
    commands = listed_commands(shown.out)
    assert shown.code == 0 and "cache" not in commands and "compare" in commands, shown.out
    bad_input.assert_user_error(run_cli(["cache", "ls"], folder, **BLOCKED), "'cache'", "neurocorr-scale")
    assert "cache" in listed_commands(run_cli(["--help"], folder).out)  # installed: listed


@pytest.mark.parametrize("how", [["--shards", "2"], ["--cache-dir", "acts"], ["--executor", "local"]])
def test_without_the_package_scale_out_options_name_it_and_write_nothing(folder, how):
    before = bad_input.snapshot(folder)
    argv = ["compare", *MODELS, "--probe", "probe.npy", "--quiet", "--json", "out.json", *how]
    result = run_cli(argv, folder, **BLOCKED)
    bad_input.assert_user_error(result, "neurocorr-scale", "pip install")
    bad_input.assert_unchanged(before, bad_input.snapshot(folder))
    with_it = run_cli(argv, folder)
    assert with_it.code == 0, with_it.err  # the same command with the package installed
