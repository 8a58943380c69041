"""The probe samples a Spearman metric keeps: in memory while they fit, else in a temp file.

Ranks need every sample of a neuron at once, so unlike Pearson the samples themselves must
be kept. :class:`SampleStore` holds rows ``(samples, neurons)``: a list of batches in RAM
until the budget would be exceeded, then one append-only raw file in a private temporary
directory, read back through :class:`numpy.memmap`. The directory is removed by
:meth:`SampleStore.close`, when the store is garbage-collected, or at interpreter exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator

import numpy as np

from neurocorr_core import NeurocorrError


class SampleStore:
    """Rows of ``width`` values of one ``dtype``, appended batch by batch.

    ``keep_in_ram(rows)`` decides, before every append, whether ``rows`` samples may stay in
    memory; the first time it says no, everything moves to disk and stays there.
    """

    def __init__(self, width: int, dtype: np.dtype, tmp_dir: str | None) -> None:
        self.width = width
        self.dtype = np.dtype(dtype)
        self.tmp_dir = tmp_dir
        self.n = 0
        self._batches: list[np.ndarray] = []
        self.dir: str | None = None
        self._finalizer: weakref.finalize | None = None
        self.closed = False

    @property
    def spilled(self) -> bool:
        return self.dir is not None

    @property
    def path(self) -> str:
        assert self.dir is not None
        return os.path.join(self.dir, "samples.raw")

    @property
    def resident_bytes(self) -> int:
        """Bytes of samples held in RAM (0 once spilled)."""
        return 0 if self.spilled else self.n * self.width * self.dtype.itemsize

    def append(self, rows: np.ndarray, *, in_ram: bool) -> None:
        """Add ``rows`` (batch, width); ``in_ram=False`` moves the store to disk first."""
        self._check_open()
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if not self.spilled and not in_ram:
            self._spill()
        if self.spilled:
            self._write(rows)
        else:
            self._batches.append(rows)
        self.n += rows.shape[0]

    def _spill(self) -> None:
        try:
            self.dir = tempfile.mkdtemp(prefix="neurocorr-spearman-", dir=self.tmp_dir)
        except OSError as exc:
            raise NeurocorrError(f"spearman: cannot create a temporary directory for spilled "
                                 f"samples in {self.tmp_dir or tempfile.gettempdir()!r} ({exc}); "
                                 "set tmp_dir to a writable directory or raise memory_budget") from exc
        # Removes the directory if the metric is dropped without close() (an error upstream).
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.dir, ignore_errors=True)
        held, self._batches = self._batches, []
        for rows in held:
            self._write(rows)

    def _write(self, rows: np.ndarray) -> None:
        try:
            with open(self.path, "ab") as fh:
                rows.tofile(fh)
        except OSError as exc:
            where = self.dir
            self.close()
            raise NeurocorrError(f"spearman: writing spilled samples to {where!r} failed ({exc}); "
                                 "the samples seen so far are lost. Free disk space or set tmp_dir "
                                 "to a larger disk, or raise memory_budget, and run again") from exc

    def columns(self, start: int, stop: int) -> np.ndarray:
        """All samples of neurons ``start:stop``, an in-memory copy (n, stop - start)."""
        self._check_open()
        if not self.spilled:
            return np.concatenate([b[:, start:stop] for b in self._batches])
        data = self._map()
        try:
            return np.array(data[:, start:stop])
        finally:
            del data

    def rows(self, step: int) -> Iterator[np.ndarray]:
        """The samples in order, ``step`` rows (at most) at a time, as in-memory arrays."""
        self._check_open()
        if not self.spilled:
            yield from (b[i:i + step] for b in self._batches for i in range(0, b.shape[0], step))
            return
        data = self._map()
        for i in range(0, self.n, step):
            yield np.array(data[i:i + step])

    def scratch(self, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
        """A writable (n, width) array for ranks: in RAM, or a memmap beside the samples."""
        self._check_open()
        if not self.spilled:
            return np.empty(shape, dtype)
        assert self.dir is not None
        return np.memmap(os.path.join(self.dir, "ranks.raw"), dtype=dtype, mode="w+", shape=shape)

    def drop_scratch(self) -> None:
        """Delete the file of a :meth:`scratch` array (a live mapping stays valid on POSIX)."""
        if self.dir is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.dir, "ranks.raw"))

    def _map(self) -> np.ndarray:
        if self.n == 0:
            return np.empty((0, self.width), self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.n, self.width))

    def close(self) -> None:
        """Drop the samples and remove the temporary directory, if any."""
        self.closed = True
        self._batches = []
        if self._finalizer is not None:
            self._finalizer()

    def _check_open(self) -> None:
        if self.closed:
            raise NeurocorrError("spearman: this metric was closed (or lost its spilled samples "
                                 "after an error); build a new one and feed it the probe again")
