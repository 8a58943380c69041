"""Precomputed activations as a model: the ``arrays`` provider.

A mapping ``{layer name: array (N, ...)}`` (numpy, or anything :func:`~neurocorr_core.probe.to_numpy`
turns into one: torch, TensorFlow, JAX arrays), an ``.npz`` file or a folder of ``.npy`` files (what
``neurocorr extract`` writes; its ``layers.json`` keeps the layers' order, kinds and depths). The arrays
are the samples: the core feeds this provider an *index probe* (sample k is the number k, see
:func:`neurocorr_core.compare.index_probe`), so probe sampling, shards and significance pick the same rows of the arrays
as they pick samples of a real probe. Layer order gives depth, unless ``depth`` says otherwise.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neurocorr_core.errors import NeurocorrError
from neurocorr_core.interfaces import ActivationProvider, LayerInfo
from neurocorr_core.npy import npy_header, read_npy
from neurocorr_core.probe import check_values_kind, to_numpy

#: The index file of a folder of activations, and the entry of an .npz that holds the same JSON.
INDEX = "layers.json"
META = "__neurocorr__"
#: float32 (the probe's type) holds every whole number up to here exactly.
MOST_SAMPLES = 2**24


def is_activations(model: object) -> bool:
    """An .npz path, a folder holding .npy files, or a non-empty mapping of names to arrays."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        return path.suffix.lower() == ".npz" or (path.is_dir() and any(path.glob("*.npy")))
    return (isinstance(model, Mapping) and len(model) > 0
            and all(isinstance(k, str) and hasattr(v, "shape") for k, v in model.items()))


class ArraysProvider(ActivationProvider):
    """Precomputed activations. ``depth``: the layers' order, as a list of names or a mapping
    ``{name: depth}`` (default: the mapping's or file's order; a folder without ``layers.json``:
    its file names in natural order, ``layer2`` before ``layer10``)."""

    name = "arrays"
    handles = "precomputed activations: {layer: array (N, ...)}, an .npz file or a folder of .npy files"
    holds_samples = True

    @classmethod
    def accepts(cls, model: object) -> bool:
        return is_activations(model)

    def __init__(self, model: object, *, depth: Sequence[str] | Mapping[str, int] | None = None,
                 **options: Any) -> None:
        super().__init__(model, **options)
        self.label = os.fspath(model) if isinstance(model, (str, os.PathLike)) else "activations"
        self._arrays, meta = _open(model, self.label)
        self._infos = _infos(self._arrays, meta, depth, self.label)
        counts = {name: int(self._arrays[name].shape[0]) for name in self._arrays}
        if len(set(counts.values())) != 1:
            shown = ", ".join(f"{k}: {v}" for k, v in list(counts.items())[:6])
            raise NeurocorrError(f"the arrays of {self.label} hold different numbers of samples ({shown}); "
                                 "every layer's array is (N, ...) over the same N probe samples")
        self.samples = next(iter(counts.values()))
        if not 2 <= self.samples <= MOST_SAMPLES:
            raise NeurocorrError(f"{self.label} holds activations of {self.samples} samples; a comparison "
                                 f"needs 2 to {MOST_SAMPLES:,} samples")

    def layers(self, sample: np.ndarray) -> list[LayerInfo]:
        return list(self._infos)  # the index batch tells nothing about the layers

    def activations(self, batches: Iterable[np.ndarray], layers: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
        for batch in batches:
            idx = np.asarray(batch).reshape(len(batch), -1)[:, 0].astype(np.int64)
            if len(idx) and idx[-1] - idx[0] == len(idx) - 1 and bool(np.all(np.diff(idx) == 1)):
                rows: slice | np.ndarray = slice(int(idx[0]), int(idx[-1]) + 1)  # a slice reads a memory map lazily
            else:
                rows = idx
            yield {name: np.asarray(self._array(name)[rows], dtype=np.float32) for name in layers}

    def _array(self, name: str) -> np.ndarray:
        array = self._arrays[name]
        if isinstance(array, _Lazy):  # an .npz entry, read when first asked for
            array = self._arrays[name] = array.load()
        return array

    def close(self) -> None:
        self._arrays = {}


class _Lazy:
    """An .npz entry: shape from its header, values read when a comparison needs them."""

    def __init__(self, path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self.path, self.key, self.shape, self.dtype = path, key, shape, dtype

    def load(self) -> np.ndarray:
        with np.load(self.path, allow_pickle=False) as npz:
            return np.asarray(npz[self.key])


def _open(model: object, label: str) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """Arrays by layer name (in order) and the index written by ``extract``, if any."""
    if isinstance(model, Mapping):
        arrays = {name: to_numpy(value) for name, value in model.items()}
        for name, array in arrays.items():
            _check(array, f"{label} layer {name!r}")
        return arrays, None
    assert isinstance(model, (str, os.PathLike))  # accepts() took a mapping or a path
    path = Path(model)
    if not path.exists():
        raise NeurocorrError(f"activations {label!r} do not exist; give an .npz file or a folder of .npy files")
    return _open_folder(path) if path.is_dir() else _open_npz(path)


def _open_folder(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    meta = _read_index(path / INDEX) if (path / INDEX).exists() else None
    if meta is not None:
        files = {entry["name"]: path / f"{entry['file']}.npy" for entry in meta}
    else:
        files = {p.stem: p for p in sorted(path.glob("*.npy"), key=lambda p: _natural(p.stem))}
    arrays = {}
    for name, file in files.items():
        arrays[name] = read_npy(file)  # memory-mapped: a folder may hold more than fits in memory
        _check(arrays[name], f"{file}")
    return arrays, meta


def _open_npz(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    try:
        with zipfile.ZipFile(path) as zf:
            arrays, meta = {}, None
            for member in zf.namelist():
                key = member[:-4] if member.endswith(".npy") else member
                with zf.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    shape, _, dtype = npy_header(f, version)
                if key == META:
                    with np.load(path, allow_pickle=False) as npz:
                        meta = json.loads(str(npz[META]))
                    continue
                arrays[key] = _Lazy(path, key, tuple(shape), np.dtype(dtype))
                _check(arrays[key], f"{path} entry {key!r}")
    except (zipfile.BadZipFile, ValueError, OSError, KeyError) as exc:
        raise NeurocorrError(f"{path} is not a readable .npz file of arrays ({type(exc).__name__}: {exc}); "
                             "save activations with numpy.savez or neurocorr extract") from None
    if not arrays:
        raise NeurocorrError(f"{path} holds no arrays; save activations with numpy.savez(path, layer=array, ...)")
    if meta is not None:
        arrays = {entry["name"]: arrays[entry["file"]] for entry in meta}
    return arrays, meta


def _read_index(path: Path) -> list[dict[str, Any]]:
    try:
        meta = json.loads(path.read_text())["layers"]
        assert isinstance(meta, list) and all("name" in e and "file" in e for e in meta)
        return meta
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise NeurocorrError(f"{path} is not an index of layers written by neurocorr extract; remove it "
                             "to read the .npy files by name") from None


def _check(array: Any, what: str) -> None:
    if array.dtype.hasobject:
        raise NeurocorrError(f"{what} holds Python objects; activations are arrays of numbers")
    check_values_kind(array, what)
    if len(array.shape) < 1:
        raise NeurocorrError(f"{what} is a scalar; activations are arrays (N, ...) with one row per sample")


def _infos(arrays: Mapping[str, Any], meta: list[dict[str, Any]] | None,
           depth: Sequence[str] | Mapping[str, int] | None, label: str) -> list[LayerInfo]:
    """The layers in forward order: ``depth`` first, then the index's depths, then the given order."""
    by_meta = {e["name"]: e for e in meta or []}
    order = _depths(list(arrays), depth, label)
    infos = [LayerInfo(name, tuple(int(s) for s in arrays[name].shape[1:]),
                       order[name] if depth is not None else int(by_meta.get(name, {}).get("depth", order[name])),
                       by_meta.get(name, {}).get("kind", "activation"), by_meta.get(name, {}).get("op", "array"))
             for name in arrays]
    return sorted(infos, key=lambda info: info.depth)


def _depths(names: list[str], depth: Sequence[str] | Mapping[str, int] | None, label: str) -> dict[str, int]:
    if depth is None:
        return {name: i for i, name in enumerate(names)}
    given = dict(depth) if isinstance(depth, Mapping) else {name: i for i, name in enumerate(depth)}
    if set(given) != set(names) or not all(isinstance(d, int) for d in given.values()):
        missing, extra = sorted(set(names) - set(given)), sorted(set(given) - set(names))
        raise NeurocorrError(f"depth for {label} must give every layer a whole number (or list every layer "
                             f"once, nearest the input first); missing: {missing or 'none'}, unknown: "
                             f"{extra or 'none'}; layers: {', '.join(names)}")
    return {name: int(given[name]) for name in names}


def _natural(name: str) -> list[Any]:
    """``layer2`` before ``layer10``: digits compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]
