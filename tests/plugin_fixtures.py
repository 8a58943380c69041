"""The ``pm`` fixture that the core's and the plugin packages' conftests share."""

import pytest

from neurocorr_core import PluginManager
from numpy_models import plugin


@pytest.fixture
def pm():
    """A fresh plugin manager per test: installed plugins plus the numpy test provider."""
    pytest.importorskip("neurocorr_pearson", reason="these tests need the pearson plugin installed")
    manager = PluginManager()
    manager.register(plugin, "numpy-test")
    return manager
