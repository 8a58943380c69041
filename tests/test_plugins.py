"""The plugin manager: entry points one by one, blocked names, duplicates, misspelt hooks."""

import importlib.metadata
import subprocess
import sys
from types import SimpleNamespace

import pytest

from neurocorr_core import Metric, NeurocorrError, PluginError, PluginManager, hookimpl
from neurocorr_core import plugins as plugins_module


class Fake(Metric):
    name = "fake"

    def update(self, x, y): ...
    def merge(self, other): ...
    def compute(self): ...
    def constant(self): ...


def metric_plugin(*classes):
    @hookimpl
    def neurocorr_similarity_metrics():
        return list(classes)
    return SimpleNamespace(neurocorr_similarity_metrics=neurocorr_similarity_metrics)


def test_builtin_matching_is_registered():
    pm = PluginManager(entry_points=False)
    assert pm.names("matching") == ["hungarian", "max", "mutual"]
    assert pm.info["builtin"].status == "ok"


def test_chosen_by_name_and_unknown_name_lists_available():
    pm = PluginManager(entry_points=False, plugins=[metric_plugin(Fake)])
    assert pm.metric("fake") is Fake
    with pytest.raises(NeurocorrError, match=r"no metric named 'nope'; available: fake"):
        pm.metric("nope")


def test_duplicate_name_is_an_error():
    pm = PluginManager(entry_points=False)
    pm.register(metric_plugin(Fake), "one")
    pm.register(metric_plugin(Fake), "two")
    with pytest.raises(PluginError, match="two plugins provide the metric 'fake': 'one' and 'two'"):
        pm.names("metric")


def test_misspelt_hook_is_an_error():
    @hookimpl
    def neurocorr_similarity_metric():  # missing the final s
        return [Fake]

    bad = SimpleNamespace(neurocorr_similarity_metric=neurocorr_similarity_metric)
    with pytest.raises(PluginError, match="neurocorr_similarity_metric"):
        PluginManager(entry_points=False, plugins=[bad])


def test_class_without_name_is_an_error():
    class Nameless(Fake):
        name = ""

    pm = PluginManager(entry_points=False, plugins=[metric_plugin(Nameless)])
    with pytest.raises(PluginError, match="without a string 'name'"):
        pm.names("metric")


def fake_entry_points(monkeypatch, *eps):
    monkeypatch.setattr(plugins_module.importlib.metadata, "entry_points",
                        lambda group: [e for e in eps if e.group == group])


def test_failing_plugin_is_unavailable_and_others_load(monkeypatch):
    sys.modules["fake_good_plugin"] = metric_plugin(Fake)  # type: ignore[assignment]
    try:
        fake_entry_points(
            monkeypatch,
            importlib.metadata.EntryPoint("broken", "no_such_module_xyz", "neurocorr"),
            importlib.metadata.EntryPoint("good", "fake_good_plugin", "neurocorr"))
        pm = PluginManager()
    finally:
        del sys.modules["fake_good_plugin"]
    assert pm.info["broken"].status == "unavailable"
    assert "No module named 'no_such_module_xyz'" in pm.info["broken"].reason
    assert pm.metric("fake") is Fake
    with pytest.raises(NeurocorrError, match=r"Unavailable plugins: broken"):
        pm.metric("pearson")


def test_environment_variable_blocks_plugins(monkeypatch):
    sys.modules["fake_good_plugin"] = metric_plugin(Fake)  # type: ignore[assignment]
    try:
        fake_entry_points(monkeypatch, importlib.metadata.EntryPoint("good", "fake_good_plugin", "neurocorr"))
        monkeypatch.setenv("NEUROCORR_DISABLE_PLUGINS", "other, good")
        pm = PluginManager()
    finally:
        del sys.modules["fake_good_plugin"]
    assert pm.info["good"].status == "blocked"
    assert pm.names("metric") == []


def test_require_names_the_install_command():
    with pytest.raises(ImportError, match="no_such_framework is not installed; install it with: pip x"):
        plugins_module.require("no_such_framework", "pip x")
    plugins_module.require("json", "never shown")


def test_hidden_framework_makes_its_plugin_unavailable_and_cli_still_works():
    """neurocorr plugins with torch hidden: torch plugin listed unavailable, exit code 0."""
    if "torch" not in {e.name for e in importlib.metadata.entry_points(group="neurocorr")}:
        pytest.skip("neurocorr-torch is not installed")
    code = ("import sys; sys.modules['torch'] = None\n"
            "from neurocorr_core.cli import main\n"
            "sys.exit(main(['plugins', '--json']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    listing = {p["name"]: p for p in json.loads(proc.stdout)}
    assert listing["torch"]["status"] == "unavailable"
    assert "torch is not installed; install it with: pip install torch==2.13.0" in listing["torch"]["reason"]
    assert listing["builtin"]["status"] == "ok"
