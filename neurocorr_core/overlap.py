"""Making the next probe batches in a second thread while the metric works on this one.

Two providers that run each batch on one thread (:meth:`ActivationProvider.single_threaded`)
leave a core idle while the metric's products run, and the products leave it idle while the
forwards run: overlapped, a 2-core machine does both at once, each on one thread, so that no
thread pool is oversubscribed. The batches and their order are the same, so the results are too.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_END = object()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def overlapped(items: Iterator[T], depth: int) -> Iterator[T]:
    """``items``, made up to ``depth`` ahead in a second thread. An error raised making one is
    raised here in its place; closing this generator stops the thread after the item it is
    making (``items`` is closed in that thread) and waits for it."""
    ready: deque[Any] = deque()
    cond = threading.Condition()
    stop = threading.Event()

    def make() -> None:
        last: Any = _END
        try:
            for item in items:
                with cond:
                    cond.wait_for(lambda: len(ready) < depth or stop.is_set())
                    if stop.is_set():
                        break
                    ready.append(item)
                    cond.notify_all()
        except BaseException as exc:  # handed to the consumer, raised there
            last = _Raised(exc)
        finally:
            getattr(items, "close", lambda: None)()
            with cond:
                ready.append(last)
                cond.notify_all()

    worker = threading.Thread(target=make, name="neurocorr-batches", daemon=True)
    worker.start()
    try:
        while True:
            with cond:
                cond.wait_for(lambda: bool(ready))
                item = ready.popleft()
                cond.notify_all()
            if isinstance(item, _Raised):
                raise item.exc
            if item is _END:
                return
            yield item
            del item  # not held while the next one is made
    finally:
        with cond:
            stop.set()
            cond.notify_all()
        worker.join()
