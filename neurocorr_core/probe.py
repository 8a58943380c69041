"""The probe: the samples every model sees, in one fixed order, batched.

Images are canonical NCHW; other inputs are (N, features). Providers convert to their
framework's layout themselves.

Every probe is checked where it is made: real numbers (a complex or non-numeric array is
refused, never silently cast), at least two axes, samples that hold values. NaN and Inf are
refused batch by batch as the probe streams (:meth:`Probe.batches`), with the samples named.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import datasets
from .errors import NeurocorrError

#: What compare(), grid() and load_probe() take as a probe, for messages.
ACCEPTED = ("a numpy array ((N, features) or NCHW images), a neurocorr Probe, the path of a .npy or "
            "IDX file, or a built-in name (" + ", ".join(datasets.BUILTIN) + ")")


@dataclass(frozen=True)
class Probe:
    """``data`` (N, ...) real numbers, float32 when batched (a memory-mapped .npy stays mapped);
    optional ``labels``."""

    data: np.ndarray
    name: str = "array"
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_values_kind(self.data, self.name)
        if self.data.ndim < 2:
            raise NeurocorrError(f"probe {self.name!r} has shape {self.data.shape}; expected "
                                 "(N, features) or images (N, C, H, W)")
        if 0 in self.data.shape[1:]:
            raise NeurocorrError(f"probe {self.name!r} has shape {self.data.shape}: its samples hold no "
                                 "values; give (N, features) with features >= 1, or images (N, C, H, W)")

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
        order; a NaN or Inf (or a value beyond float32's range) is an error naming the samples."""
        batch_size = check_batch_size(batch_size)
        for start in range(0, len(self), batch_size):
            with np.errstate(over="ignore"):  # beyond float32's range becomes Inf, refused below
                batch = np.array(self.data[start:start + batch_size], dtype=np.float32, order="C")
            if not np.isfinite(batch).all():
                raise self._not_finite(batch, start)
            yield batch

    def _not_finite(self, batch: np.ndarray, start: int) -> NeurocorrError:
        bad = ~np.isfinite(batch.reshape(len(batch), -1))
        rows = start + np.flatnonzero(bad.any(axis=1))
        shown = ", ".join(str(int(r)) for r in rows[:8]) + (", ..." if len(rows) > 8 else "")
        return NeurocorrError(f"probe {self.name!r} holds {int(bad.sum())} NaN/Inf value(s) (or values beyond "
                              f"float32's range, about 3.4e38) in {len(rows)} sample(s): {shown}; clean the "
                              "probe first (e.g. np.nan_to_num, or drop those samples)")


def check_values_kind(data: np.ndarray, name: str) -> None:
    """Refuse an array that does not hold real numbers: a complex probe would lose its imaginary
    part when cast to float32, silently; strings and objects are not inputs."""
    kind = data.dtype.kind
    if kind == "c":
        raise NeurocorrError(f"probe {name!r} holds complex numbers ({data.dtype}); models are fed real "
                             "float32 values and the imaginary part would be lost: pass real values, e.g. "
                             "np.abs(x), x.real, or real and imaginary parts as separate features")
    if kind not in "biuf":
        raise NeurocorrError(f"probe {name!r} has dtype {data.dtype}, not numbers; a probe holds real "
                             "values: convert it with x.astype(np.float32)")


def check_batch_size(batch_size: Any) -> int:
    """A batch size is a whole number of samples, at least 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise NeurocorrError(f"batch size must be a whole number of at least 1, got {batch_size!r} "
                             "(--batch-size N feeds N probe samples at a time; default 256)")
    return int(batch_size)


def check_limit(limit: Any) -> int | None:
    """None (every sample) or a whole number of samples, at least 1."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise NeurocorrError(f"probe limit must be a whole number of at least 1, got {limit!r} "
                             "(--probe-limit N keeps the first N probe samples)")
    return int(limit)


def load_probe(spec: str | os.PathLike[str] | np.ndarray | Probe, limit: int | None = None) -> Probe:
    """A probe from an array, a ``.npy`` file, an IDX file (gzipped or not) or a built-in name.

    Built-in names: ``digits`` (scikit-learn, 1,797 8x8 digits), ``fashion-mnist`` and
    ``mnist``, each optionally with ``:train`` or ``:test`` (default test).
    ``limit`` keeps the first samples only (a whole number, at least 1).
    """
    limit = check_limit(limit)
    probe = _load(spec)
    return probe.head(limit) if limit is not None else probe


def _load(spec: object) -> Probe:
    if isinstance(spec, Probe):
        return spec
    if isinstance(spec, np.ndarray):
        return Probe(spec)
    if not isinstance(spec, (str, os.PathLike)):
        raise NeurocorrError(_not_a_probe(spec))
    text = os.fspath(spec)
    if not isinstance(text, str):
        raise NeurocorrError(f"probe path {text!r} is bytes; give it as text (str or pathlib.Path)")
    name, _, split = text.partition(":")
    if name in datasets.BUILTIN and not os.path.exists(text):
        data, labels = datasets.BUILTIN[name](split or "test")
        return Probe(data, text, labels)
    path = Path(text)
    if not os.path.exists(text):  # os.path.exists: False (not an error) for a name too long or with NUL
        raise NeurocorrError(f"probe {text!r} is neither a file nor a built-in data set; "
                             f"built-ins: {', '.join(datasets.BUILTIN)}; files: .npy or IDX")
    if path.is_dir():
        raise NeurocorrError(f"probe {text!r} is a folder; give a .npy or IDX file")
    if path.suffix.lower() == ".npy":
        return Probe(read_npy(path), path.name)
    if datasets.is_idx(path) or datasets.is_gzip(path):  # a damaged gzip: read_idx says so
        raw = datasets.read_idx(path)
        return Probe(datasets.idx_images(raw) if raw.ndim == 3 else raw.astype(np.float32), path.name)
    raise NeurocorrError(f"probe file {path} is neither .npy nor an IDX file; save arrays "
                         "with numpy.save (NCHW images or (N, features))")


def _not_a_probe(spec: object) -> str:
    """What was given instead of a probe, and how to turn it into one."""
    kind = f"{type(spec).__module__}.{type(spec).__qualname__}"
    if hasattr(spec, "detach") and hasattr(spec, "numpy"):  # a torch tensor
        how = "convert it with tensor.detach().cpu().numpy()"
    elif hasattr(spec, "dataset") and hasattr(spec, "__iter__"):  # a torch DataLoader
        how = ("stack its inputs into one array: np.concatenate([x.numpy() for x, *_ in loader]) "
               "(a loader without shuffling keeps the order every model must see)")
    elif kind.startswith("torch.") and hasattr(spec, "__getitem__"):  # a torch Dataset
        how = "stack its inputs into one array: np.stack([dataset[i][0].numpy() for i in range(len(dataset))])"
    elif isinstance(spec, (list, tuple)):
        how = "convert it with np.asarray(values, dtype=np.float32)"
    else:  # TensorFlow and JAX arrays convert with np.asarray too
        how = "convert it to a numpy array first, e.g. np.asarray(x)"
    return f"a probe must be {ACCEPTED}; got {kind}: {how}"


def read_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file, memory-mapped, once its header is checked against the file's length:
    nothing is read beyond what the header declares, and pickled objects are never loaded."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            shape, fortran, dtype = _npy_header(f, version)
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
    except Exception as exc:  # numpy parses the header text with tokenize and ast: any of their errors
        raise NeurocorrError(f"{path} is not a valid .npy file ({type(exc).__name__}: {_first_line(exc)}); "
                             "save arrays with numpy.save") from None
    if dtype.hasobject:
        raise NeurocorrError(f"{path} holds Python objects ({dtype}), which are pickles and are never "
                             "loaded; save an array of numbers (x.astype(np.float32))")
    if dtype.kind not in "biufc":  # before any allocation (an "empty" S0 array is S1, of any size)
        raise NeurocorrError(f"probe {path.name!r} has dtype {dtype}, not numbers; a probe holds real "
                             "values: convert it with x.astype(np.float32)")
    expected = _count(shape) * dtype.itemsize
    if min(shape, default=0) < 0 or size - offset < expected:
        raise NeurocorrError(f"{path} is truncated or damaged: its header says shape {shape} of {dtype} "
                             f"({expected} bytes) but {size - offset} bytes follow; save it again")
    try:
        if expected == 0:  # a memory map cannot be empty
            return np.empty(shape, dtype=dtype)
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    except (ValueError, OverflowError, OSError) as exc:  # e.g. an axis beyond what numpy indexes
        raise NeurocorrError(f"cannot read {path}: its header says shape {shape} of {dtype} "
                             f"({_first_line(exc)}); save it again with numpy.save") from None


def _npy_header(f: Any, version: tuple[int, int]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    fmt = np.lib.format
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    return tuple(int(s) for s in shape), bool(fortran), np.dtype(dtype)


def _count(shape: tuple[int, ...]) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
