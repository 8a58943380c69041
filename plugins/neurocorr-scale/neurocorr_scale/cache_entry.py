"""The file format of one activation cache entry: writing it, reading it back, checking it.

An entry is one file: the magic bytes, the length of a JSON header, the header (the entry's
key digest, shape, dtype, the SHA-256 of the payload and a ``meta`` record for ``neurocorr
cache ls``) and the payload, float32 (samples, neurons). A reader trusts nothing in it: a
wrong magic, key, length, shape or checksum is :class:`CorruptEntry`, never an array.

Its own module because the format is what an entry *is*, while :mod:`neurocorr_scale.cache`
is the folder that holds entries: their names and keys, eviction and clearing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"NCACT1\n"
_HEADER = struct.Struct("<Q")  # header length in bytes


class CorruptEntry(Exception):
    """An entry file that fails any check of the format: it is deleted and recomputed, never used."""


def entry_chunks(digest: str, array: np.ndarray, meta: Mapping[str, Any]) -> list[bytes | memoryview]:
    """The bytes of the entry for ``array`` under the key ``digest``, as chunks written one after
    another (the payload is a view of the array, not a copy). ``array``: float32, C-contiguous."""
    payload = array.reshape(-1).view(np.uint8).data
    header = json.dumps({"key": digest, "shape": list(array.shape), "dtype": "float32",
                         "sha256": hashlib.sha256(payload).hexdigest(), "meta": dict(meta)}).encode()
    return [MAGIC + _HEADER.pack(len(header)) + header, payload]


def is_entry_file(path: Path) -> bool:
    """Whether the file at ``path`` (not followed if a link) begins with the cache's magic."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def read_entry(path: Path, digest: str) -> np.ndarray:
    """The array of the entry at ``path``, which must be the entry of key ``digest``. OSError when
    it cannot be opened (absent, unreadable, a link: never followed); :class:`CorruptEntry` when
    any check fails."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))  # a link: OSError, a miss
    with os.fdopen(fd, "rb") as f:
        head = f.read(len(MAGIC) + _HEADER.size)
        if len(head) != len(MAGIC) + _HEADER.size or not head.startswith(MAGIC):
            raise CorruptEntry
        (length,) = _HEADER.unpack(head[len(MAGIC):])
        if length > os.fstat(f.fileno()).st_size:  # a damaged length: never allocate what is not there
            raise CorruptEntry
        try:
            header = json.loads(f.read(length))
            shape = tuple(int(s) for s in header["shape"])
            expected = header["sha256"]
            ok = header["key"] == digest and header["dtype"] == "float32"
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError):  # int(inf), JSON nested too deep
            raise CorruptEntry from None
        buffer = bytearray(f.read())
    if not ok or min(shape, default=0) < 0 or len(buffer) != 4 * math.prod(shape) \
            or hashlib.sha256(buffer).hexdigest() != expected:
        raise CorruptEntry
    try:
        return np.frombuffer(buffer, dtype=np.float32).reshape(shape)
    except ValueError:  # an axis beyond what numpy indexes
        raise CorruptEntry from None


def read_meta(path: Path) -> dict[str, Any]:
    """The ``meta`` record and shape of the entry at ``path``; empty when its header is unreadable."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC) + _HEADER.size)
            (length,) = _HEADER.unpack(head[len(MAGIC):])
            if length > os.fstat(f.fileno()).st_size:  # a damaged length: never allocate what is not there
                return {}
            header = json.loads(f.read(length))
        return {**header.get("meta", {}), "shape": header.get("shape")}
    except (OSError, ValueError, KeyError, struct.error, AttributeError, TypeError, RecursionError):
        return {}  # not a dict, meta not a mapping, JSON nested too deep: an unreadable header
