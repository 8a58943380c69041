"""The ``.npy`` file format, read safely: the header checked against the file's length before any
allocation, memory-mapped, and never a pickled object (probes and precomputed activations)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NeurocorrError


def read_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file, memory-mapped, once its header is checked against the file's length:
    nothing is read beyond what the header declares, and pickled objects are never loaded."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            shape, fortran, dtype = npy_header(f, version)
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
    except Exception as exc:  # numpy parses the header text with tokenize and ast: any of their errors
        raise NeurocorrError(f"{path} is not a valid .npy file ({type(exc).__name__}: {first_line(exc)}); "
                             "save arrays with numpy.save") from None
    if dtype.hasobject:
        raise NeurocorrError(f"{path} holds Python objects ({dtype}), which are pickles and are never "
                             "loaded; save an array of numbers (x.astype(np.float32))")
    if dtype.kind not in "biufc":  # before any allocation (an "empty" S0 array is S1, of any size)
        raise NeurocorrError(f"probe {path.name!r} has dtype {dtype}, not numbers; a probe holds real "
                             "values: convert it with x.astype(np.float32)")
    expected = element_count(shape) * dtype.itemsize
    if min(shape, default=0) < 0 or size - offset < expected:
        raise NeurocorrError(f"{path} is truncated or damaged: its header says shape {shape} of {dtype} "
                             f"({expected} bytes) but {size - offset} bytes follow; save it again")
    try:
        if expected == 0:  # a memory map cannot be empty
            return np.empty(shape, dtype=dtype)
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    except (ValueError, OverflowError, OSError) as exc:  # e.g. an axis beyond what numpy indexes
        raise NeurocorrError(f"cannot read {path}: its header says shape {shape} of {dtype} "
                             f"({first_line(exc)}); save it again with numpy.save") from None


def npy_header(f: Any, version: tuple[int, int]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """Shape, Fortran order and dtype from a .npy header (``f`` just past the magic)."""
    fmt = np.lib.format
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    return tuple(int(s) for s in shape), bool(fortran), np.dtype(dtype)


def element_count(shape: tuple[int, ...]) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
