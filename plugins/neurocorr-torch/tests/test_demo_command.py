"""'neurocorr demo' comes from this plugin through the neurocorr_commands hook; the demo's
training code is imported only when it runs."""

import subprocess
import sys

import pytest

from neurocorr_core import PluginManager
from neurocorr_core.cli import main
from neurocorr_torch import DemoCommand


def test_demo_comes_through_the_commands_hook():
    assert PluginManager().registry["command"]["demo"] == (DemoCommand, "torch")


def test_demo_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: neurocorr demo" in out and "--seed" in out and "--quiet" in out


def test_the_plugin_module_does_not_import_the_demo():
    code = "import sys, neurocorr_torch; print('neurocorr_torch.demo' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
