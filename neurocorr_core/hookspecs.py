"""The hooks a neurocorr plugin can implement, and the marker that implements them.

A plugin is a module (or object) registered under the entry-point group ``neurocorr``.
Each hook but ``neurocorr_run_sharded`` takes no arguments and returns a list of classes; every class carries a unique
``name`` by which users choose it (``--metric pearson``, ``--executor dask``, ``neurocorr
NAME``); two plugins offering one name is an error. The core's own matchings, the ``local``
executor and the core's commands come in through the same hooks, as built-in plugins. A plugin may implement any subset
of the hooks. Hooks are called once per plugin manager, when the registry is built; their
results are collected from every plugin (no hook stops at the first result).

Implement a hook with the core's marker::

    from neurocorr_core import hookimpl

    @hookimpl
    def neurocorr_similarity_metrics():
        return [MyMetric]
"""

from __future__ import annotations

from collections.abc import Sequence

import pluggy

from .interfaces import NAME, ActivationProvider, Command, Executor, MatchingStrategy, Metric
from .probe import Probe
from .sharding import ShardedOutcome, ShardedRun

__all__ = ["NAME", "hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker(NAME)
#: The marker plugins implement hooks with: ``from neurocorr_core import hookimpl``.
hookimpl = pluggy.HookimplMarker(NAME)


@hookspec
def neurocorr_activation_providers() -> Sequence[type[ActivationProvider]]:
    """Return the activation providers this plugin offers.

    An activation provider recognises a model (an in-memory object, a file path, or the
    object a ``module:callable`` reference built), lists its layers and yields their
    outputs for batches of probe inputs. See :class:`neurocorr_core.ActivationProvider`.

    :return: a list of :class:`ActivationProvider` subclasses, each with a unique ``name``.
        When a user does not name a provider, the core asks every provider's ``accepts``
        and requires exactly one to say yes.
    """


@hookspec
def neurocorr_similarity_metrics() -> Sequence[type[Metric]]:
    """Return the similarity metrics this plugin offers.

    A metric is a streaming accumulator: ``update`` per probe batch, ``merge`` of shards,
    ``compute`` at the end. Neuron-level metrics (``level = "neuron"``) compute a
    neuron x neuron similarity; layer-level metrics (``level = "layer"``) one number per
    pair of layers. See :class:`neurocorr_core.Metric`.

    :return: a list of :class:`Metric` subclasses, each with a unique ``name``.
    """


@hookspec
def neurocorr_matching_strategies() -> Sequence[type[MatchingStrategy]]:
    """Return the matching strategies this plugin offers.

    A matching strategy turns a neuron x neuron score matrix (higher is better) into each
    row neuron's partner and its score: ``max`` picks the best column for every row.
    See :class:`neurocorr_core.MatchingStrategy`.

    :return: a list of :class:`MatchingStrategy` subclasses, each with a unique ``name``.
    """


@hookspec
def neurocorr_executors() -> Sequence[type[Executor]]:
    """Return the executors this plugin offers.

    An executor runs the core's tasks (extract a probe shard, accumulate a metric, merge
    shards): ``submit`` a task, ``as_completed`` for the results. The core's ``local``
    executor runs them in this process; a plugin runs them elsewhere (``neurocorr-dask``).
    Users choose one by name (``--executor NAME``); options reach the constructor as keywords
    (``--executor-option KEY=VALUE``), and a name the constructor does not take is refused.
    See :class:`neurocorr_core.Executor`.

    :return: a list of :class:`Executor` subclasses, each with a unique ``name``.
    """


@hookspec(firstresult=True)
def neurocorr_run_sharded(run: ShardedRun) -> ShardedOutcome | None:
    """Run compare()'s plan shard by shard on an executor, and return the merged metrics.

    Unlike the hooks above, this one is called once per comparison, and one installed plugin at
    most implements it: neurocorr-scale, which runs the shard tasks on the executor that
    ``run.executor`` names (the ``local`` one, or a plugin's) and reads and fills the activation
    cache. See :mod:`neurocorr_core.sharding`.
    """


@hookspec(firstresult=True)
def neurocorr_load_probe(text: str) -> Probe | None:
    """Return the probe ``text`` names (a data set, a file of a format the plugin reads, a folder
    of images), or None if the plugin does not read it.

    The core reads ``.npy`` files itself and asks the plugins for any other text (neurocorr-data:
    built-in data sets, IDX files, folders of images); the first probe returned is used. A plugin
    that recognises ``text`` but cannot read it raises :class:`NeurocorrError` saying why.
    """


@hookspec
def neurocorr_probe_names() -> Sequence[str]:
    """Return the names of the data sets this plugin's ``neurocorr_load_probe`` reads (``digits``,
    ...), for help texts, error messages and experiment files."""


@hookspec
def neurocorr_commands() -> Sequence[type[Command]]:
    """Return the subcommands this plugin adds to the ``neurocorr`` command line.

    Each is built with no arguments; ``configure`` adds its arguments to its own parser and
    ``run`` does the work. ``neurocorr --help`` builds every command's parser, so a command's
    module must import its framework inside ``run``, not at import time. The core's own
    commands (``compare``, ``layers``, ...) come in through this hook too.
    See :class:`neurocorr_core.Command`.

    :return: a list of :class:`Command` subclasses, each with a unique ``name``.
    """
