"""The rules every fuzzed reader is held to, shared by the core's tests/test_fuzz_readers.py and
the plugin packages' fuzz tests: any bytes give a result or a NeurocorrError, within
PEAK_BYTES of memory for an input under MAX_INPUT."""

from __future__ import annotations

import os
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from neurocorr_core import NeurocorrError

#: The most a reader may allocate (Python and numpy, as tracemalloc sees it) for an input < 64 KB.
PEAK_BYTES = 50 * 2**20
MAX_INPUT = 64 * 1024
#: NEUROCORR_FUZZ_EXAMPLES=5000 hunts longer, with fresh random examples each run; the default is 200
#: examples per reader, the same every run (a failure in CI reproduces).
HUNT = int(os.environ.get("NEUROCORR_FUZZ_EXAMPLES") or 0)
FUZZ = settings(max_examples=HUNT or 200, deadline=None, derandomize=not HUNT, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

blobs = st.binary(max_size=MAX_INPUT)


def bounded(read: Callable[[], Any]) -> Any:
    """``read()``'s result, or the NeurocorrError it raised; any other exception fails the test,
    and so does a peak allocation above PEAK_BYTES."""
    tracemalloc.start()
    try:
        return read()
    except NeurocorrError as exc:
        assert str(exc).strip(), "an error without words"
        return exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < PEAK_BYTES, f"the reader allocated {peak:,} bytes for an input under {MAX_INPUT:,}"


@contextmanager
def scratch(name: str, data: bytes) -> Iterator[Path]:
    """``data`` in a fresh file called ``name``, removed afterwards (hypothesis runs many examples
    per test: no function-scoped fixture)."""
    with tempfile.TemporaryDirectory(prefix="neurocorr-fuzz-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        yield path
