"""neurocorr: compare neural networks by what their neurons do.

The public API: :func:`compare`, its :class:`Comparison` result, :func:`load_probe`, the
plugin contracts (:class:`ActivationProvider`, :class:`Metric`, :class:`MatchingStrategy`,
:class:`Executor`, :class:`Command`) and the ``hookimpl`` marker plugins use.
"""

from .compare import compare, open_model
from .errors import NeurocorrError, PluginError
from .hookspecs import hookimpl
from .interfaces import KINDS, ActivationProvider, Command, Executor, LayerInfo, Match, MatchingStrategy, Metric
from .plugins import PluginManager, get_plugin_manager, require
from .probe import AnyProbe, Probe, StreamProbe
from .probe_sources import load_probe
from .result import Comparison, LayerResult, Score

__all__ = [
    "KINDS", "ActivationProvider", "Command", "Comparison", "Executor", "LayerInfo", "LayerResult", "Match",
    "MatchingStrategy", "Metric", "NeurocorrError", "PluginError", "PluginManager", "Probe",
    "Score", "StreamProbe", "AnyProbe", "compare", "get_plugin_manager", "hookimpl", "load_probe",
    "open_model", "require",
]
