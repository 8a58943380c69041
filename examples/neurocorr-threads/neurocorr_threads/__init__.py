"""neurocorr-threads: an example third-party plugin that extends the core through two hooks.

- ``neurocorr_executors``: the ``threads`` executor runs the core's tasks (extract a probe
  shard, accumulate a metric, merge shards) on a pool of threads in this process
  (``--executor threads``, option ``workers``).
- ``neurocorr_commands``: ``neurocorr scores RESULT.json`` prints the scores of a saved result.

Both modules import nothing heavy, so ``neurocorr --help`` stays fast with this plugin installed.
"""

from neurocorr_core import Command, Executor, hookimpl

from .executor import ThreadsExecutor
from .scores import ScoresCommand


@hookimpl
def neurocorr_executors() -> list[type[Executor]]:
    return [ThreadsExecutor]


@hookimpl
def neurocorr_commands() -> list[type[Command]]:
    return [ScoresCommand]


__all__ = ["ScoresCommand", "ThreadsExecutor"]
