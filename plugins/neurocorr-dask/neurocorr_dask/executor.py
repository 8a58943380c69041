"""The ``dask`` executor: the core's shard tasks on a ``dask.distributed`` cluster, an existing
scheduler or a LocalCluster it starts on 127.0.0.1.

It runs the same task functions as the core's ``local`` executor in the same merge order, so the
results agree to rounding. Models travel to the workers as file paths or ``module:callable``
references, never as objects (the core checks that before submitting anything).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from neurocorr_core import Executor, NeurocorrError
from neurocorr_scale.executor import ExecutorLost

from .cluster import abandon, check_scheduler_address, connect, connect_timeout, quiet_dask


class DaskExecutor(Executor):
    """Tasks on a ``dask.distributed`` cluster: the scheduler at ``scheduler`` (e.g.
    ``tcp://127.0.0.1:8786``), or a LocalCluster of ``workers`` single-threaded worker
    processes on 127.0.0.1 (default 2) that :meth:`close` shuts down.

    Dask's own log messages are held back while this executor connects, runs and closes:
    every failure it reports reaches the caller as one :class:`NeurocorrError` instead (a
    scheduler that goes away mid-run: :class:`ClusterLost`)."""

    name = "dask"
    remote = True

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 timeout: float | None = None, **options: Any) -> None:
        super().__init__(**options)  # refuses an option no constructor took, naming those it takes
        timeout = connect_timeout(timeout)
        if scheduler is not None:
            check_scheduler_address(scheduler)
        if workers is not None:
            check_workers(workers)
        if scheduler is not None and workers is not None:
            raise NeurocorrError("--workers starts a local cluster; with --scheduler the cluster's own "
                                 "workers run the tasks: give one of them, not both")
        try:
            from distributed import Client
        except ImportError:
            raise NeurocorrError("the dask executor needs dask.distributed; install it with: "
                                 "pip install neurocorr-dask (or pip install 'dask[distributed]')") from None
        self.cluster: Any = None
        self.scheduler = scheduler
        self.timeout = timeout
        self._finished: set[Any] = set()
        with quiet_dask():
            if scheduler is not None:
                self.client = connect(Client, scheduler, timeout)
                self._wait_for_a_worker(timeout)
            else:
                self.cluster = start_local_cluster(2 if workers is None else workers)
                self.client = Client(self.cluster, timeout=timeout, set_as_default=False)

    def _wait_for_a_worker(self, timeout: float) -> None:
        """A scheduler without workers would hold the tasks for ever: wait ``timeout`` seconds
        for one, then say so."""
        try:
            self.client.wait_for_workers(1, timeout=timeout)
        except (TimeoutError, OSError):
            self.close()
            raise NeurocorrError(
                f"the Dask scheduler at {self.scheduler} has no workers (none joined within {timeout:g} s); "
                f"start some ('dask worker {self.scheduler} --nthreads 1'), or leave out --scheduler to "
                "start a local cluster") from None

    def where(self) -> str:
        return f"the Dask scheduler at {self.scheduler}" if self.scheduler else "the local Dask cluster"

    def put(self, value: Any) -> Any:
        self._check_connected()
        return self.client.scatter(value)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        self._check_connected()
        future = self.client.submit(fn, *args, pure=False)
        future.add_done_callback(self._note_done)
        return future

    def _note_done(self, future: Any) -> None:
        # runs in Dask's callback thread; a lost connection later marks every future cancelled,
        # so what had finished is remembered here
        if future.status == "finished":
            self._finished.add(future.key)

    def token(self, handle: Any) -> Any:
        return handle.key

    def finished(self, token: Any) -> bool:
        return token in self._finished

    def _check_connected(self) -> None:
        if self.client.status not in ("running", "connecting", "newly-created"):
            raise self._lost(f"is not connected (client {self.client.status})")

    def _lost(self, what: str) -> ClusterLost:
        # a scheduler of the user's must be started again before a re-run; a local cluster is new each run
        return ClusterLost(f"{self.where()} {what}", restart="start the scheduler again" if self.scheduler else "")

    def as_completed(self, handles: Mapping[Any, Any]) -> Iterator[tuple[Any, Any]]:
        from concurrent.futures import CancelledError

        from distributed import as_completed

        tags = {future.key: tag for tag, future in handles.items()}
        with quiet_dask():
            for future, result in as_completed(list(handles.values()), loop=self.client.loop,
                                                  with_results=True, raise_errors=False):
                if future.status == "cancelled" or isinstance(result, CancelledError):
                    reason = getattr(result, "reason", "cancelled")
                    raise self._lost(f"went away mid-run ({reason})")
                if future.status == "error":
                    _raise_task_error(result)
                yield tags[future.key], result

    def slots(self) -> int:
        return len(self.client.scheduler_info().get("workers", {}))

    def describe(self) -> str:
        where = self.scheduler or "a local cluster on 127.0.0.1"
        return f"dask ({where}, {self.slots()} workers)"

    def close(self) -> None:
        # after a lost scheduler the client cannot close gracefully: give it a short while, then
        # let go (what it held is gone with the scheduler)
        lost = self.client.status not in ("running", "connecting")
        with quiet_dask():
            with contextlib.suppress(Exception):
                self.client.close(timeout=2 if lost else 2 * self.timeout)
            abandon(self.client)
            if self.cluster is not None:
                with contextlib.suppress(Exception):
                    self.cluster.close(timeout=2 * self.timeout)


class ClusterLost(ExecutorLost):
    """The Dask scheduler (or the local cluster) went away while a run was using it."""


def _raise_task_error(error: Any) -> None:
    """Raise a failed task's exception (``(type, exception, traceback)``); a task that killed
    every worker it ran on (out of memory, a crash in native code) as a NeurocorrError."""
    _, exc, tb = error
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        deaths = exc.allowed_failures + 1
        raise NeurocorrError(
            f"the worker running one of this run's tasks died ({deaths} time{'s' * (deaths > 1)}: killed when "
            "out of memory, or a crash in the model's code), so Dask gave up on it; give the "
            "workers more memory, use more --shards (smaller tasks) or a smaller --batch-size") from None
    raise exc.with_traceback(tb)


def check_workers(workers: object) -> int:
    """``workers`` as a count of local worker processes (a whole number of at least 1)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise NeurocorrError(f"workers must be a whole number of at least 1, got {workers!r}; "
                             "give e.g. --workers 2, or leave it out")
    return workers


def start_local_cluster(count: int) -> Any:
    """A LocalCluster of ``count`` single-threaded worker processes on 127.0.0.1 (call it with
    Dask's logs held back: its workers share this process's stderr)."""
    from distributed import LocalCluster

    try:
        # the scheduler's HTTP server (metrics) on a free port: 8787 may be taken
        return LocalCluster(n_workers=count, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                            processes=True, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                            silence_logs=logging.CRITICAL + 1)
    except (RuntimeError, OSError, TimeoutError) as exc:
        raise NeurocorrError(
            f"could not start a local Dask cluster of {count} worker{'s' * (count != 1)} ({exc}). "
            "A script that starts one needs an 'if __name__ == \"__main__\":' guard, since each "
            "worker is a new Python process that imports it; or start the cluster yourself and "
            "pass --scheduler") from None
