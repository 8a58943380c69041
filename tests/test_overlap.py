"""The second thread that makes probe batches ahead of the metric (neurocorr_core.overlap)."""

from __future__ import annotations

import threading

import pytest

from neurocorr_core import NeurocorrError
from neurocorr_core.gather import OVERLAP_CHUNK, chunk_rows, short_chunks
from neurocorr_core.overlap import overlapped


class Source:
    """Items 0..n-1, made in whatever thread iterates them; records how far ahead it ran."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.made = 0
        self.taken = 0
        self.ahead = 0
        self.threads: set[str] = set()
        self.closed = threading.Event()

    def __iter__(self):
        try:
            for i in range(self.n):
                self.threads.add(threading.current_thread().name)
                if i == self.fail_at:
                    raise NeurocorrError(f"batch {i} failed: fix the probe")
                self.made += 1
                self.ahead = max(self.ahead, self.made - self.taken)
                yield i
        finally:
            self.closed.set()


def test_items_come_in_order_from_a_second_thread_at_most_depth_ahead():
    source = Source(50)
    got = []
    for item in overlapped(iter(source), depth=3):
        source.taken += 1
        got.append(item)
    assert got == list(range(50))
    assert source.threads == {"neurocorr-batches"}
    assert source.ahead <= 3 + 1  # the queue, and the one being handed over
    assert source.closed.is_set()


def test_an_error_making_an_item_is_raised_in_its_place():
    source = Source(10, fail_at=4)
    got = []
    with pytest.raises(NeurocorrError, match="batch 4 failed: fix the probe"):
        for item in overlapped(iter(source), depth=2):
            got.append(item)
    assert got == [0, 1, 2, 3]
    assert not any(t.name == "neurocorr-batches" for t in threading.enumerate())


def test_closing_early_stops_the_thread_and_closes_the_source():
    source = Source(1000)
    items = overlapped(iter(source), depth=2)
    assert [next(items), next(items)] == [0, 1]
    items.close()
    assert source.closed.is_set()
    assert source.made <= 2 + 3  # nothing made after the close but the item under way
    assert not any(t.name == "neurocorr-batches" for t in threading.enumerate())


def test_an_error_in_the_consumer_stops_the_thread():
    source = Source(1000)
    with pytest.raises(ZeroDivisionError):
        for item in overlapped(iter(source), depth=4):
            if item == 5:
                _ = 1 / 0
    assert source.closed.is_set()
    assert not any(t.name == "neurocorr-batches" for t in threading.enumerate())


def test_short_chunks_cap_the_chunk_only_where_asked():
    long = chunk_rows(896, 896, 896 * 896 + 2 * (512**2 + 256**2 + 128**2))
    assert long > OVERLAP_CHUNK
    token = short_chunks.set(True)
    try:
        assert chunk_rows(896, 896, 896 * 896 + 2 * (512**2 + 256**2 + 128**2)) == OVERLAP_CHUNK
    finally:
        short_chunks.reset(token)
    assert chunk_rows(896, 896, 896 * 896 + 2 * (512**2 + 256**2 + 128**2)) == long
