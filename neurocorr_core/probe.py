"""The probe: the samples every model sees, in one fixed order, batched.

Images are canonical NCHW; other inputs are (N, features). Providers convert to their
framework's layout themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import datasets
from .errors import NeurocorrError


@dataclass(frozen=True)
class Probe:
    """``data`` (N, ...) float32 (a memory-mapped .npy stays mapped); optional ``labels``."""

    data: np.ndarray
    name: str = "array"
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.data.ndim < 2:
            raise NeurocorrError(f"probe {self.name!r} has shape {self.data.shape}; expected "
                                 "(N, features) or images (N, C, H, W)")

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape[1:])

    def head(self, n: int) -> Probe:
        """The first ``n`` samples (the seed paper probes FC-vs-CNN on the first 10)."""
        labels = None if self.labels is None else self.labels[:n]
        return Probe(self.data[:n], f"{self.name}[:{n}]", labels)

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Contiguous, writable float32 batches (copies, also of a read-only memory map), in
        order; a NaN or Inf is an error naming the samples."""
        if batch_size < 1:
            raise NeurocorrError(f"batch size must be at least 1, got {batch_size}")
        for start in range(0, len(self), batch_size):
            batch = np.array(self.data[start:start + batch_size], dtype=np.float32, order="C")
            if not np.isfinite(batch).all():
                bad = int((~np.isfinite(batch)).sum())
                raise NeurocorrError(f"probe {self.name!r} holds {bad} NaN/Inf values in samples "
                                     f"{start}..{start + len(batch) - 1}; clean the probe first")
            yield batch


def load_probe(spec: str | os.PathLike[str] | np.ndarray | Probe, limit: int | None = None) -> Probe:
    """A probe from an array, a ``.npy`` file, an IDX file (gzipped or not) or a built-in name.

    Built-in names: ``digits`` (scikit-learn, 1,797 8x8 digits), ``fashion-mnist`` and
    ``mnist``, each optionally with ``:train`` or ``:test`` (default test).
    ``limit`` keeps the first samples only.
    """
    probe = _load(spec)
    return probe.head(limit) if limit is not None else probe


def _load(spec: str | os.PathLike[str] | np.ndarray | Probe) -> Probe:
    if isinstance(spec, Probe):
        return spec
    if isinstance(spec, np.ndarray):
        return Probe(spec)
    text = os.fspath(spec)
    name, _, split = text.partition(":")
    if name in datasets.BUILTIN and not Path(text).exists():
        data, labels = datasets.BUILTIN[name](split or "test")
        return Probe(data, text, labels)
    path = Path(text)
    if not path.exists():
        raise NeurocorrError(f"probe {text!r} is neither a file nor a built-in data set; "
                             f"built-ins: {', '.join(datasets.BUILTIN)}; files: .npy or IDX")
    if path.suffix == ".npy":
        try:
            return Probe(np.load(path, mmap_mode="r", allow_pickle=False), path.name)
        except ValueError as exc:
            raise NeurocorrError(f"cannot read probe {path}: {exc}") from None
    if datasets.is_idx(path):
        raw = datasets.read_idx(path)
        return Probe(datasets.idx_images(raw) if raw.ndim == 3 else raw.astype(np.float32), path.name)
    raise NeurocorrError(f"probe file {path} is neither .npy nor an IDX file; save arrays "
                         "with numpy.save (NCHW images or (N, features))")
