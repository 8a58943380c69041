"""The ``threads`` executor: the core's tasks on a pool of threads in this process."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from neurocorr_core import Executor, NeurocorrError


class ThreadsExecutor(Executor):
    """Runs tasks in parallel on ``workers`` threads (default: the CPUs this process may use, at
    most 8). NumPy and the frameworks release the GIL in their kernels, so shards of a probe
    really run at once; models stay in this process (``remote`` is False), nothing is pickled."""

    name = "threads"

    def __init__(self, workers: int | None = None, **options: Any) -> None:
        super().__init__(**options)  # refuses an option it does not take, naming 'workers'
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise NeurocorrError(f"the threads executor's workers must be a whole number of at least 1, got "
                                 f"{workers!r}; give e.g. workers=2, or leave it out")
        self.workers = workers or min(8, len(os.sched_getaffinity(0)))
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="neurocorr")
        self._numbers = itertools.count()
        self._finished: set[int] = set()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        # A task waits for the results of the earlier tasks it takes as arguments. The pool
        # starts tasks in submission order and a task only names earlier ones, so the oldest
        # unfinished task never waits: no deadlock however few the threads.
        future = self.pool.submit(_call, fn, args)
        number = next(self._numbers)
        future.add_done_callback(lambda done: self._record(done, number))
        future.neurocorr_token = number  # type: ignore[attr-defined]  # see token()
        return future

    def _record(self, future: Future[Any], number: int) -> None:
        if not future.cancelled() and future.exception() is None:
            self._finished.add(number)

    def as_completed(self, handles: Mapping[Any, Any]) -> Iterator[tuple[Any, Any]]:
        tags = {future: tag for tag, future in handles.items()}
        for future in futures.as_completed(tags):
            yield tags[future], future.result()  # a failed task raises its own exception here

    def token(self, handle: Any) -> int:
        return int(handle.neurocorr_token)

    def finished(self, token: Any) -> bool:
        return token in self._finished

    def slots(self) -> int:
        return self.workers

    def describe(self) -> str:
        return f"threads ({self.workers} worker{'s' * (self.workers > 1)})"

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    return fn(*(a.result() if isinstance(a, Future) else a for a in args))
