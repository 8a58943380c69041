import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))  # the core's test models and harness

from neurocorr_core import PluginManager
from numpy_models import plugin


@pytest.fixture
def pm():
    """A fresh plugin manager per test: installed plugins plus the numpy test provider."""
    pytest.importorskip("neurocorr_pearson", reason="the data tests need the pearson plugin installed")
    manager = PluginManager()
    manager.register(plugin, "numpy-test")
    return manager
