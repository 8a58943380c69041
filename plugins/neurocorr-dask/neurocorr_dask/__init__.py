"""neurocorr-dask: the ``dask`` executor, which runs neurocorr's shard tasks on a
``dask.distributed`` cluster (``--executor dask``, ``--scheduler ADDRESS``, ``--workers N``;
docs/scale-out.md).

Import-light: ``distributed`` is imported when an executor is built, not when the plugin loads.
"""

from __future__ import annotations

from neurocorr_core import Executor, hookimpl

from .cluster import check_scheduler_address, connect_timeout
from .executor import ClusterLost, DaskExecutor

__all__ = ["ClusterLost", "DaskExecutor", "check_scheduler_address", "connect_timeout"]


@hookimpl
def neurocorr_executors() -> list[type[Executor]]:
    return [DaskExecutor]
