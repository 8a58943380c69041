"""The atlas is a plugin package: its commands reach ``neurocorr`` through the
``neurocorr_commands`` hook, and without the package (here: blocked with
NEUROCORR_DISABLE_PLUGINS) ``neurocorr --help`` lists none of them and each says which package
brings it. Both run the real command in a child process, as a user would."""

from __future__ import annotations

import subprocess
import sys

import pytest

import bad_input
from bad_input import listed_commands
from neurocorr_atlas import AtlasCommand, GridCommand, PredictCommand, neurocorr_commands
from neurocorr_core import PluginManager

COMMANDS = ("atlas", "grid", "predict")
BLOCKED = {"NEUROCORR_DISABLE_PLUGINS": "atlas"}


def test_the_plugin_offers_the_three_commands():
    assert [c.name for c in neurocorr_commands()] == list(COMMANDS)
    assert neurocorr_commands() == [AtlasCommand, GridCommand, PredictCommand]
    assert {c.name for c in PluginManager().commands()} >= set(COMMANDS)  # through the entry point


def test_with_the_package_the_commands_work(tmp_path):
    shown = bad_input.neurocorr(["--help"], cwd=tmp_path)
    assert shown.code == 0 and set(COMMANDS) <= listed_commands(shown.out), shown.out
    ls = bad_input.neurocorr(["atlas", "ls", "--atlas", "none.db"], cwd=tmp_path)
    bad_input.assert_user_error(ls, "no atlas at none.db", "neurocorr atlas add")  # the command ran
    for command in ("grid", "predict"):
        assert "--trust-pickle" in bad_input.neurocorr([command, "--help"], cwd=tmp_path).out


def test_without_the_package_help_lists_none_and_each_names_the_package(tmp_path):
    shown = bad_input.neurocorr(["--help"], cwd=tmp_path, env=BLOCKED)
    assert shown.code == 0, shown.err
    assert not set(COMMANDS) & listed_commands(shown.out), shown.out
    assert {"compare", "run"} <= listed_commands(shown.out)  # the core's own commands are still there
    for argv in (["atlas", "ls"], ["grid", "--probe", "digits"], ["predict", "m.pt", "--probe", "digits"]):
        result = bad_input.neurocorr(argv, cwd=tmp_path, env=BLOCKED)
        bad_input.assert_user_error(result, f"'{argv[0]}'", "neurocorr-atlas")
        assert not any(tmp_path.iterdir()), "a missing command wrote something"


@pytest.mark.parametrize("heavy", ["neurocorr_atlas.store", "neurocorr_atlas.fill", "neurocorr_atlas.predict",
                                   "neurocorr_atlas.texts", "sqlite3"])
def test_the_plugin_module_is_import_light(heavy):
    """``neurocorr --help`` loads the plugin module: the atlas file, the grid and the texts are
    imported only when a command runs."""
    code = f"import sys, neurocorr_atlas; sys.exit({heavy!r} in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0, f"importing the plugin imports {heavy}"
