"""The probe: the samples every model sees, in one fixed order, batched.

Images are canonical NCHW; other inputs are (N, features). Providers convert to their
framework's layout themselves.

Every probe is checked where it is made: real numbers (a complex or non-numeric array is
refused, never silently cast), at least two axes, samples that hold values. NaN and Inf are
refused batch by batch as the probe streams (:meth:`Probe.batches`), with the samples named.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import NeurocorrError

#: What compare(), grid() and load_probe() take as a probe, for messages.
ACCEPTED = ("a numpy array ((N, features) or NCHW images; or a torch, TensorFlow or JAX one), a torch DataLoader "
            "or Dataset, a tf.data.Dataset, an iterable of batches, a neurocorr Probe, the path of a .npy file, "
            "or a data set name, IDX file or folder of images that a plugin reads (neurocorr-data)")


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


class StreamProbe:
    """A probe streamed from the user's loader (torch DataLoader or Dataset, tf.data, a list of
    batches): never held whole in memory. ``source()`` starts a fresh pass, yielding numpy
    batches (n, ...) in the loader's own sizes; :meth:`batches` cuts them to the size asked for.
    Each pass must give the same samples in the same order: its first samples are checked
    against the first pass's (a loader that shuffles is refused). ``length``: the number of
    samples, counted in one pass over the source when None. ``keep``: the sorted indices of a
    seeded subset (``sample_probe``); ``stop``: only the first samples (``--probe-limit``)."""

    labels = None

    def __init__(self, source: Callable[[], Iterator[np.ndarray]], length: int | None, name: str,
                 keep: np.ndarray | None = None, stop: int | None = None) -> None:
        self.source, self.name, self.keep, self.stop = source, name, keep, stop
        self._length = length
        self._first: np.ndarray | None = None

    def __len__(self) -> int:
        if self.keep is not None:
            return len(self.keep)
        if self._length is None:
            self._length = sum(len(chunk) for chunk in self.source())
        return self._length if self.stop is None else min(self._length, self.stop)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.head(1).sample_shape

    def head(self, n: int) -> Probe:
        """The first ``n`` samples, as an array probe."""
        taken = list(itertools.islice(self.batches(min(n, 256)), -(-n // min(n, 256))))
        return Probe(np.concatenate(taken)[:n], f"{self.name}[:{n}]")

    def limited(self, limit: int) -> StreamProbe:
        """Only the first ``limit`` samples, still streamed."""
        return StreamProbe(self.source, self._length, f"{self.name}[:{limit}]", stop=limit)

    def subset(self, idx: np.ndarray, name: str) -> StreamProbe:
        """The samples at ``idx`` (sorted, as :func:`~neurocorr_core.sampling.sample_indices` draws them)."""
        keep = np.sort(np.asarray(idx)) if self.keep is None else self.keep[np.sort(np.asarray(idx))]
        return StreamProbe(self.source, self._length, name, keep, self.stop)

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Float32 batches of ``batch_size`` samples, in order, checked as :meth:`Probe.batches`."""
        batch_size = check_batch_size(batch_size)
        pending: list[np.ndarray] = []
        held = seen = done = 0
        total = len(self) if self._length is not None or self.keep is not None else None
        for chunk in self.source():
            rows = np.arange(seen, seen + len(chunk))
            seen += len(chunk)
            self._check_order(chunk, seen - len(chunk))
            if self.keep is not None:
                chunk = chunk[np.isin(rows, self.keep)]
            if self.stop is not None:
                chunk = chunk[:max(self.stop - done - held, 0)]
            pending.append(chunk)
            held += len(chunk)
            while held >= batch_size:
                batch, pending, held = _cut(pending, batch_size, held)
                yield self._checked(batch, done)
                done += batch_size
            if self.stop is not None and done + held >= self.stop:
                break
        if held:
            yield self._checked(np.concatenate(pending), done)
        if total is not None and done + held != total:
            raise NeurocorrError(f"probe {self.name!r} gave {done + held} samples in this pass, {total} before; "
                                 "a probe must give the same samples on every pass (a loader over a dataset "
                                 "that changes, or one that drops samples at random?)")

    def _checked(self, batch: np.ndarray, start: int) -> np.ndarray:
        """``batch`` (samples ``start``...) as a contiguous float32 copy, refused as :meth:`Probe.batches`
        refuses non-numbers and NaN/Inf."""
        probe = Probe(batch, self.name)  # checks what the values are and the shape
        with np.errstate(over="ignore"):
            out = np.array(batch, dtype=np.float32, order="C")
        if not np.isfinite(out).all():
            raise probe._not_finite(out, start)
        return out

    def _check_order(self, chunk: np.ndarray, start: int) -> None:
        if start:
            return
        first = np.asarray(chunk[:2], dtype=np.float32)
        if self._first is None:
            self._first = first
        elif first.shape != self._first.shape or not np.array_equal(first, self._first):
            raise NeurocorrError(f"probe {self.name!r} gave other first samples on a second pass: it is "
                                 "shuffled, so models would not see the samples in one order; build the "
                                 "loader without shuffling (DataLoader(..., shuffle=False), no ds.shuffle())")


def _cut(pending: list[np.ndarray], size: int, held: int) -> tuple[np.ndarray, list[np.ndarray], int]:
    """The first ``size`` samples of the pending chunks, and what remains."""
    joined = pending[0] if len(pending) == 1 else np.concatenate(pending)
    return joined[:size], [joined[size:]], held - size


def to_numpy(value: Any) -> np.ndarray:
    """A numpy array from a numpy, torch (detached and moved to the CPU), TensorFlow or JAX
    array, by duck typing: no framework is imported here."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch: off the autograd graph and the GPU
        value = value.detach().cpu()
    if hasattr(value, "numpy") and callable(value.numpy):  # torch and TensorFlow eager tensors
        value = value.numpy()
    return np.asarray(value)


def _is_array(value: object) -> bool:
    """A numpy, torch, TensorFlow or JAX array (not a loader, not a list)."""
    return hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, (list, tuple))


def _is_batch(item: object) -> bool:
    """An array of at least two axes (samples, ...), or (inputs, labels, ...) starting with one."""
    if isinstance(item, (list, tuple)) and item:
        item = item[0]
    return _is_array(item) and len(getattr(item, "shape", ())) >= 2


def _inputs(item: Any) -> np.ndarray:
    """The inputs of a loader's item: the item itself, or the first element of (inputs, labels, ...)."""
    if isinstance(item, (tuple, list)) and item and not _is_array(item):
        item = item[0]
    if isinstance(item, Mapping):
        raise NeurocorrError(f"a probe loader's items must be inputs or (inputs, labels, ...); got a mapping "
                             f"with keys {', '.join(map(str, list(item)[:6]))}: map it to its inputs first, "
                             "e.g. (x['image'] for x in loader)")
    return to_numpy(item)


def _stream(spec: Any) -> StreamProbe | Probe | None:
    """A probe from a framework's loader or an iterable of batches; None for anything else."""
    kind = type(spec).__qualname__
    if hasattr(spec, "dataset") and hasattr(spec, "sampler") and hasattr(spec, "batch_size"):  # DataLoader
        samplers = [spec.sampler, getattr(getattr(spec, "batch_sampler", None), "sampler", None)]
        if any("Random" in type(s).__name__ for s in samplers if s is not None):
            raise NeurocorrError(f"the probe {kind} shuffles ({type(spec.sampler).__name__}): each model would "
                                 "see the samples in another order; build it with shuffle=False (a fixed order "
                                 "is part of the comparison)")
        sized = hasattr(spec.dataset, "__len__") and not getattr(spec, "drop_last", False)
        return StreamProbe(lambda: (_inputs(item) for item in spec), len(spec.dataset) if sized else None, kind)
    if hasattr(spec, "element_spec") and hasattr(spec, "__iter__"):  # tf.data.Dataset
        element = spec.element_spec[0] if isinstance(spec.element_spec, tuple) else spec.element_spec
        batched = getattr(element, "shape", None) is not None and len(element.shape) and element.shape[0] is None
        return StreamProbe(lambda: _samples_or_batches(spec, bool(batched)), None, kind)
    if hasattr(spec, "__getitem__") and hasattr(spec, "__len__") and any(
            c.__name__ == "Dataset" for c in type(spec).__mro__):  # a map-style torch Dataset
        return StreamProbe(lambda: _samples_or_batches((spec[i] for i in range(len(spec))), False),
                           len(spec), kind)
    if isinstance(spec, (list, tuple)) and spec and all(_is_batch(b) for b in spec):
        return StreamProbe(lambda: (_inputs(b) for b in spec), None, "batches")
    if isinstance(spec, Iterator):  # a generator can be read once: its batches are kept
        items = list(spec)
        if not items or not all(_is_batch(b) for b in items):
            raise NeurocorrError(_not_a_probe(spec) + " (an iterator must give batches: arrays (n, ...))")
        chunks = [_inputs(b) for b in items]
        return Probe(np.concatenate(chunks), "batches")
    return None


def _samples_or_batches(items: Iterable[Any], batched: bool) -> Iterator[np.ndarray]:
    """Batches from items that are batches already, or from single samples stacked 256 at a time."""
    if batched:
        yield from (_inputs(item) for item in items)
        return
    it = iter(items)
    while chunk := [_inputs(item) for item in itertools.islice(it, 256)]:
        yield np.stack(chunk)


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


#: Either kind of probe: an array (random access) or a stream from a loader.
AnyProbe = Probe | StreamProbe


def to_probe(spec: object) -> AnyProbe:
    """A probe from anything :func:`~neurocorr_core.probe_sources.load_probe` takes but text."""
    if isinstance(spec, (Probe, StreamProbe)):
        return spec
    if isinstance(spec, np.ndarray):
        return Probe(spec)
    if _is_array(spec) and not isinstance(spec, (str, os.PathLike)):  # torch, TensorFlow, JAX
        return Probe(to_numpy(spec), type(spec).__qualname__)
    stream = _stream(spec)
    if stream is None:
        raise NeurocorrError(_not_a_probe(spec))
    return stream


def _not_a_probe(spec: object) -> str:
    """What was given instead of a probe, and how to turn it into one."""
    kind = f"{type(spec).__module__}.{type(spec).__qualname__}"
    if hasattr(spec, "detach") and hasattr(spec, "numpy"):  # tensor-like, yet without shape and dtype
        how = "convert it with tensor.detach().cpu().numpy()"
    elif isinstance(spec, (list, tuple)):
        how = "convert it with np.asarray(values, dtype=np.float32), or give a list of batches (arrays)"
    else:
        how = "convert it to a numpy array first, e.g. np.asarray(x)"
    return f"a probe must be {ACCEPTED}; got {kind}: {how}"
