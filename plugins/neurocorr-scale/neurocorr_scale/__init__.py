"""neurocorr-scale: scale-out for neurocorr (docs/scale-out.md).

The ``local`` executor; compare()'s plan run shard by shard on any executor (the
``neurocorr_run_sharded`` hook); the on-disk activation cache and ``neurocorr cache``;
and many-model grids (:func:`grid`), which the atlas package builds on. Executor plugins such
as neurocorr-dask offer other executors through the core's ``neurocorr_executors`` hook.
"""

from __future__ import annotations

from collections.abc import Sequence

from neurocorr_core import Command, Executor, hookimpl
from neurocorr_core.sharding import ShardedOutcome, ShardedRun

from .commands import CacheCommand
from .executor import ExecutorLost, LocalExecutor, sharded_metrics

__all__ = ["ExecutorLost", "LocalExecutor"]


@hookimpl
def neurocorr_executors() -> Sequence[type[Executor]]:
    return [LocalExecutor]


@hookimpl
def neurocorr_commands() -> Sequence[type[Command]]:
    return [CacheCommand]


@hookimpl
def neurocorr_run_sharded(run: ShardedRun) -> ShardedOutcome:
    return sharded_metrics(run)
