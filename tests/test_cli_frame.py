"""The command line is a frame: every subcommand, the core's own included, comes through the
``neurocorr_commands`` hook; a command may read its own arguments; ``--help`` imports no framework."""

import argparse
import importlib.metadata
import json
import subprocess
import sys
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest

from neurocorr_core import Command, NeurocorrError, PluginManager, compare, config, hookimpl
from neurocorr_core import plugins as plugins_module
from neurocorr_core.cli import main
from neurocorr_core.commands import compare_parser

CORE_COMMANDS = ["compare", "layers", "plugins", "run"]
#: Modules that must not be imported to list the commands (each takes a second or more).
FRAMEWORKS = ("torch", "tensorflow", "keras", "jax", "flax", "onnx", "onnxruntime", "dask", "distributed")


class Hello(Command):
    name = "hello"
    help = "say hello"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--name", default="world")
        parser.add_argument("--fail", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        if args.fail:
            raise NeurocorrError("hello failed; give a better name")
        print(f"hello {args.name}")
        return 3


class Raw(Command):
    name = "raw"
    help = "reads its own arguments"
    parsed = False
    received: ClassVar[list[list[str]]] = []

    def run_argv(self, argv: list[str]) -> int:
        Raw.received.append(argv)
        return 0


def command_plugin(*classes):
    @hookimpl
    def neurocorr_commands():
        return list(classes)
    return SimpleNamespace(neurocorr_commands=neurocorr_commands)


@pytest.fixture
def with_plugins(monkeypatch):
    """The CLI's plugin manager: the built-in plugin and the given plugins, nothing installed."""
    def use(*plugins):
        pm = PluginManager(entry_points=False, plugins=plugins)
        monkeypatch.setattr(plugins_module, "_default", pm)
        return pm
    return use


def test_the_core_commands_come_from_the_builtin_plugin():
    pm = PluginManager(entry_points=False)
    assert pm.names("command") == CORE_COMMANDS
    assert {pm.registry["command"][name][1] for name in CORE_COMMANDS} == {"builtin"}
    assert pm.names("executor") == []  # executors, shards and the cache come with neurocorr-scale


def test_the_scale_package_adds_the_local_executor_the_cache_command_and_sharded_runs():
    import neurocorr_scale

    pm = PluginManager(entry_points=False, plugins=[neurocorr_scale])
    assert pm.names("executor") == ["local"] and "cache" in pm.names("command")
    assert pm.info["neurocorr_scale"].hooks == ["neurocorr_commands", "neurocorr_executors",
                                                "neurocorr_run_sharded"]


def test_a_sharded_run_without_the_scale_package_says_what_to_install():
    from numpy_models import mlp, plugin

    pm = PluginManager(entry_points=False, plugins=[plugin, *_pearson()])
    probe = np.random.default_rng(0).random((8, 6), np.float32)
    for keywords in ({"shards": 2}, {"cache": "somewhere"}, {"executor": "local"}):
        with pytest.raises(NeurocorrError, match="pip install neurocorr-scale"):
            compare(mlp(0, [4], n_in=6), mlp(1, [4], n_in=6), probe, plugin_manager=pm, **keywords)


def _pearson() -> list[object]:
    import neurocorr_pearson

    return [neurocorr_pearson]


def test_a_plugins_command_is_parsed_and_run(with_plugins, capsys):
    with_plugins(command_plugin(Hello))
    assert main(["hello", "--name", "there"]) == 3  # the command's exit status
    assert capsys.readouterr().out == "hello there\n"


def test_the_help_lists_every_command(with_plugins, capsys):
    with_plugins(command_plugin(Hello, Raw))
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in [*CORE_COMMANDS, "hello", "raw"]:
        assert f"    {name} " in out or f"    {name}\n" in out, name
    assert "say hello" in out and "reads its own arguments" in out


def test_a_command_that_reads_its_own_arguments_gets_them_untouched(with_plugins):
    with_plugins(command_plugin(Raw))
    Raw.received.clear()
    assert main(["raw", "--not-an-option", "-x", "compare", "--help"]) == 0
    assert Raw.received == [["--not-an-option", "-x", "compare", "--help"]]


def test_a_commands_errors_are_one_line(with_plugins, capsys):
    with_plugins(command_plugin(Hello))
    assert main(["hello", "--fail"]) == 2
    assert capsys.readouterr().err == "neurocorr: error: hello failed; give a better name\n"
    assert main(["hello", "--name"]) == 2
    err = capsys.readouterr().err
    assert err == "neurocorr: error: argument --name: expected one argument; see 'neurocorr hello --help'\n"


def test_a_command_named_twice_is_one_line_naming_both_plugins(with_plugins, capsys):
    class Impostor(Hello):
        name = "compare"

    with_plugins(command_plugin(Impostor))
    assert main(["plugins"]) == 2
    err = capsys.readouterr().err
    assert "two plugins provide the command 'compare': 'builtin' and" in err and err.count("\n") == 1


def test_a_missing_command_names_the_plugins_that_did_not_load(monkeypatch, capsys):
    broken = importlib.metadata.EntryPoint("broken", "no_such_module_xyz", "neurocorr")
    monkeypatch.setattr(plugins_module.importlib.metadata, "entry_points",
                        lambda group: [broken] if group == "neurocorr" else [])
    monkeypatch.setattr(plugins_module, "_default", PluginManager())
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'frobnicate'" in err and "see 'neurocorr --help'" in err
    assert "plugins not loaded (their commands are missing): broken (ModuleNotFoundError: No module named" in err
    assert err.count("\n") == 1
    assert main(["demo"]) == 2  # a command of one of the project's packages names the package
    assert capsys.readouterr().err == ("neurocorr: error: 'demo' is a command of the neurocorr-torch package, "
                                       "which is not installed: pip install neurocorr-torch (from a checkout: "
                                       "pip install -e plugins/neurocorr-torch)\n")
    assert main(["plugins", "--bogus"]) == 2  # not about the command: no word of plugins
    assert "not loaded" not in capsys.readouterr().err


def test_run_reads_experiment_files_against_the_compare_command():
    from neurocorr_core.cli import _parser  # the frame's parser: compare as the CLI sees it

    framed = config.subparser(_parser(), "compare")
    alone = compare_parser()
    assert list(config.compare_options(alone)) == list(config.compare_options(framed))
    with pytest.raises(NeurocorrError, match="see 'neurocorr compare --help'"):
        alone.parse_args(["only_one_model"])


def test_plugins_lists_the_commands_and_executors_each_plugin_provides(with_plugins, capsys):
    with_plugins(command_plugin(Hello))
    assert main(["plugins", "--json"]) == 0
    listing = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listing["builtin"]["provides"]["command"] == ["plugins", "layers", "compare", "run"]
    assert "executor" not in listing["builtin"]["provides"]
    assert listing["builtin"]["provides"]["matching"] == ["max", "mutual", "hungarian"]
    assert main(["plugins"]) == 0
    text = capsys.readouterr().out
    assert "command: plugins, layers, compare, run\n" in text


# -- a fast --help: listing the commands imports every plugin's module, never a framework ----------------
def test_building_the_parser_imports_no_framework():
    code = ("import sys\nfrom neurocorr_core.cli import _parser\n_parser()\n"
            f"print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"building the parser imported {proc.stdout.strip()}"


def test_neurocorr_help_imports_no_framework():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "neurocorr_core.cli", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "compare" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    frameworks = sorted({name.split(".")[0] for name in imported} & set(FRAMEWORKS))
    assert not frameworks, f"neurocorr --help imported {frameworks}"


@pytest.mark.parametrize(("argv", "code"), [(["--version"], 0), (["no-such-command"], 2)])
def test_the_console_script_exits_with_mains_code_its_long_lived_objects_frozen(argv, code):
    """run() (the installed ``neurocorr``) freezes what lives at start and at exit out of the
    cyclic collector, which with torch loaded rescans ~10^6 objects per full collection."""
    script = ("import atexit, gc, sys\nfrom neurocorr_core.cli import run\n"
              "atexit.register(lambda: print('frozen', gc.get_freeze_count()))\n"
              f"sys.argv = ['neurocorr', *{argv!r}]\nrun()")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, proc.stderr
    frozen = int(proc.stdout.split("frozen")[-1])
    assert frozen > 1000, f"only {frozen} objects frozen"


def test_json_means_the_same_on_listing_commands(capsys, tmp_path, monkeypatch):
    """``--json`` alone or ``--json -`` prints, ``--json OUT`` writes OUT, as on compare and run."""
    monkeypatch.chdir(tmp_path)
    for argv in (["plugins", "--json"], ["plugins", "--json", "-"]):
        assert main(argv) == 0
        assert any(p["name"] == "builtin" for p in json.loads(capsys.readouterr().out))
    assert main(["plugins", "--json", "plugins.json"]) == 0
    assert capsys.readouterr().out == ""
    assert any(p["name"] == "builtin" for p in json.loads((tmp_path / "plugins.json").read_text()))
