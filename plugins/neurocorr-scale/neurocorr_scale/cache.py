"""An on-disk cache of neuron activations, so a model runs over a probe once.

An entry holds one layer's neurons over one probe (shard), as float32 (samples, neurons) in a
neuron view. It is content-addressed: its key is the SHA-256 of the model fingerprint (file
bytes, or a ``module:callable`` reference and its module's source, plus the provider and its
options; see :func:`model_fingerprint`), the layer name, the neuron view and the probe
fingerprint (the SHA-256 of the samples' float32 bytes and shape). Change any of those and the
key changes, so a stale entry is never found; nothing needs invalidating.

Each entry is one file, written to a temporary name and renamed (atomic), holding a JSON header
with the SHA-256 of its payload (the format: :mod:`neurocorr_scale.cache_entry`): a truncated or
altered entry fails the check, is deleted and recomputed, never used. The cache keeps at most
``limit`` bytes: after a write the least recently used entries (a hit refreshes an entry's time)
are deleted until it fits.

The cache deletes only what it wrote: files named ``XX/<sha256>.act`` that start with its magic
bytes, its own temporary files, and its empty ``XX`` folders (two hex digits). It never follows a
link inside its folder, so whatever a link points to is never touched; the folder itself may be a
link (e.g. to a larger disk).

Folder: ``$NEUROCORR_CACHE_DIR`` or ``~/.cache/neurocorr/activations``; size limit:
``$NEUROCORR_CACHE_LIMIT`` (e.g. ``20GB``) or 10 GB.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.util
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurocorr_core.errors import NeurocorrError
from neurocorr_core.files import WriteError, write_atomic
from neurocorr_core.models import is_reference
from neurocorr_core.tiles import parse_budget

from .cache_entry import CorruptEntry, entry_chunks, is_entry_file, read_entry, read_meta

DIR_ENV = "NEUROCORR_CACHE_DIR"
LIMIT_ENV = "NEUROCORR_CACHE_LIMIT"
DEFAULT_LIMIT = 10 * 10**9
_SUFFIX = ".act"
_CHUNK = 1 << 20
#: The names the cache gives its folders, entries and temporary files (files.write_files').
_FOLDER = re.compile(r"[0-9a-f]{2}")
_ENTRY = re.compile(r"[0-9a-f]{64}" + re.escape(_SUFFIX))
_TEMPORARY = re.compile(r"\.[0-9a-f]{64}" + re.escape(_SUFFIX) + r"\..+\.tmp")


def default_dir() -> Path:
    return Path(os.environ.get(DIR_ENV) or Path.home() / ".cache" / "neurocorr" / "activations")


def default_limit() -> int:
    text = os.environ.get(LIMIT_ENV)
    if not text:
        return DEFAULT_LIMIT
    try:
        value = parse_budget(text)
    except NeurocorrError:
        raise NeurocorrError(f"{LIMIT_ENV}={text!r} is not a size; write e.g. 20GB or 500MB") from None
    assert value is not None
    return value


# -- fingerprints ---------------------------------------------------------------------------------
def _hash_file(digest: Any, path: Path) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)


def _hash_path(digest: Any, path: Path) -> None:
    """A file's bytes; a folder's (a SavedModel) relative names and bytes, in sorted order."""
    if path.is_file():
        _hash_file(digest, path)
        return
    for sub in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(sub.relative_to(path).as_posix().encode() + b"\0")
        _hash_file(digest, sub)


def model_fingerprint(spec: object, provider: str, options: Mapping[str, Any] | None = None,
                      own: str | None = None) -> str | None:
    """A hex digest that changes when the model's outputs could, or None (not cacheable).

    ``own``: the provider's :meth:`~neurocorr_core.ActivationProvider.fingerprint`, used when
    given. Otherwise a file or folder path is hashed byte by byte; a ``module:callable``
    reference by its text and the source of its module (so the builder must be deterministic,
    e.g. seeded); an in-memory object has no fingerprint (None). The provider name and its
    options are part of the digest.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps([provider, sorted((k, repr(v)) for k, v in (options or {}).items())]).encode())
    if own is not None:
        digest.update(b"provider:" + own.encode())
    elif is_reference(spec):
        assert isinstance(spec, str)
        digest.update(b"reference:" + spec.encode())
        module = spec.partition(":")[0]
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            found = None
        if found is None or not found.origin or not Path(found.origin).is_file():
            return None  # a module we cannot read: no honest fingerprint
        _hash_file(digest, Path(found.origin))
    elif isinstance(spec, (str, os.PathLike)) and Path(spec).exists():
        digest.update(b"file:")
        _hash_path(digest, Path(spec))
    else:
        return None
    return digest.hexdigest()


def probe_fingerprint(data: np.ndarray) -> str:
    """SHA-256 of a probe's (or shard's) shape and float32 bytes."""
    array = np.ascontiguousarray(data, dtype=np.float32)
    digest = hashlib.sha256(json.dumps(list(array.shape)).encode())
    digest.update(array.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


@dataclass(frozen=True)
class EntryKey:
    """What an entry's content depends on (fingerprints are hex digests)."""

    model: str
    layer: str
    view: str
    probe: str

    def digest(self) -> str:
        text = json.dumps([self.model, self.layer, self.view, self.probe])
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One cached layer, as ``neurocorr cache ls`` lists it (``used``: seconds since the epoch)."""

    key: str
    path: Path
    size: int
    used: float
    meta: dict[str, Any]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    writes: int = 0
    evicted: int = 0


@dataclass
class ActivationCache:
    """The cache folder ``root`` (created on first write), holding at most ``limit`` bytes."""

    root: Path = field(default_factory=default_dir)
    limit: int = field(default_factory=default_limit)
    stats: CacheStats = field(default_factory=CacheStats)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser()
        if self.limit <= 0:
            raise NeurocorrError(f"the cache size limit must be positive, got {self.limit} bytes")

    def __getstate__(self) -> dict[str, Any]:  # travels to workers without the local counters
        return {"root": self.root, "limit": self.limit, "stats": CacheStats()}

    def path(self, key: EntryKey) -> Path:
        digest = key.digest()
        return self.root / digest[:2] / f"{digest}{_SUFFIX}"

    def get(self, key: EntryKey) -> np.ndarray | None:
        """The cached array, or None when absent or corrupt (a corrupt entry is deleted)."""
        path = self.path(key)
        try:
            array = read_entry(path, key.digest())
        except OSError:  # absent, a link (not followed), unreadable
            self.stats.misses += 1
            return None
        except CorruptEntry:
            self.stats.corrupt += 1
            self.stats.misses += 1
            with contextlib.suppress(OSError):  # a read-only cache keeps it; it is never used
                path.unlink()
            return None
        self.stats.hits += 1
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently used = oldest time
        return array

    def put(self, key: EntryKey, array: np.ndarray, meta: Mapping[str, Any] | None = None) -> None:
        """Store ``array`` (samples, neurons) atomically, then evict down to the limit."""
        array = np.ascontiguousarray(array, dtype=np.float32)
        if array.nbytes > self.limit:
            return  # larger than the whole cache: not worth evicting everything for
        meta = {**(meta or {}), "layer": key.layer, "view": key.view}
        path = self.path(key)
        if path.parent.is_symlink():
            return  # not the cache's folder: leave it alone
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, entry_chunks(key.digest(), array, meta))
        except OSError as exc:
            raise self._cannot_write(exc) from None
        except WriteError as exc:
            raise self._cannot_write(exc.cause) from None
        self.stats.writes += 1
        self.evict(keep=path)

    def _cannot_write(self, exc: OSError | None) -> NeurocorrError:
        cause = (exc.strerror if exc is not None else None) or str(exc)
        full = exc is not None and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        advice = (f"free some space, lower the cache's size limit (${LIMIT_ENV}), " if full
                  else "give a folder you can write to (--cache-dir or $NEUROCORR_CACHE_DIR), ")
        return NeurocorrError(f"cannot write the activation cache in {self.root}: {cause}; {advice}"
                              "or run without the cache")

    def check_writable(self) -> None:
        """Fail before the work, not after it, when entries cannot be written into ``root``
        (or, before it exists, into the folder that would hold it)."""
        folder = self.root
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".neurocorr-cache-", suffix=".check")
        except OSError as exc:
            raise self._cannot_write(exc) from None
        os.close(fd)
        os.unlink(tmp)

    def entries(self) -> list[Entry]:
        """Every entry, least recently used first (unreadable headers show an empty ``meta``)."""
        found = []
        for path in self._files():
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            found.append(Entry(path.stem, path, info.st_size, info.st_mtime, read_meta(path)))
        return sorted(found, key=lambda e: e.used)

    def size(self) -> int:
        return sum(_size(p) for p in self._files())

    def evict(self, keep: Path | None = None) -> int:
        """Delete least recently used entries until the cache holds at most ``limit`` bytes."""
        files = []
        for path in self._files():
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            files.append((info.st_mtime, info.st_size, path))
        total = sum(size for _, size, _ in files)
        removed = 0
        for _, size, path in sorted(files, key=lambda f: f[0]):
            if total <= self.limit:
                break
            if path == keep or not is_entry_file(path):
                continue
            with contextlib.suppress(OSError):  # gone meanwhile, or another process's to delete
                path.unlink()
                removed += 1
            total -= size
        self.stats.evicted += removed
        return removed

    def clear(self) -> int:
        """Delete every entry, the cache's stray temporary files and its folders left empty;
        the number of entries deleted. Nothing else in ``root`` is touched (see the module)."""
        count = 0
        try:
            for path in self._files():
                if is_entry_file(path):
                    path.unlink(missing_ok=True)
                    count += 1
            for folder in self._folders():
                for tmp in _own(folder, _TEMPORARY):
                    tmp.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # not empty: it holds something not ours
                    if not any(folder.iterdir()):
                        folder.rmdir()
        except OSError as exc:
            raise NeurocorrError(f"cannot clear the activation cache in {self.root}: "
                                 f"{exc.strerror or exc} ({exc.filename}); {count} entries were deleted; "
                                 "run it as a user who may delete there") from None
        return count

    def _folders(self) -> Iterator[Path]:
        """The cache's own subfolders: real folders (not links) named by two hex digits."""
        yield from _own(self.root, _FOLDER, stat.S_ISDIR)

    def _files(self) -> Iterator[Path]:
        """Files named as entries, in the cache's own subfolders (links are not followed)."""
        for folder in self._folders():
            yield from (p for p in _own(folder, _ENTRY) if p.name.startswith(folder.name))


def _own(folder: Path, name: re.Pattern[str], kind: Any = stat.S_ISREG) -> Iterator[Path]:
    """The entries of ``folder`` whose name matches ``name`` and that are of ``kind`` (by lstat:
    a link is neither a file nor a folder here)."""
    try:
        children = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for child in children:
        if not name.fullmatch(child.name):
            continue
        with contextlib.suppress(FileNotFoundError):
            if kind(child.stat(follow_symlinks=False).st_mode):
                yield Path(child.path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def open_cache(cache: ActivationCache | str | os.PathLike[str] | bool | None,
               limit: int | str | None = None, *, write: bool = True) -> ActivationCache | None:
    """``cache`` as given by a user: None/False (no cache), True (the default folder), a folder,
    or an :class:`ActivationCache`; ``limit``: bytes or ``"20GB"`` (default: the environment's).
    ``write``: refuse now, before any work, a folder the cache could not write to."""
    if cache is None or cache is False:
        return None
    if isinstance(cache, ActivationCache):
        return cache
    size = parse_budget(limit) if limit is not None else default_limit()
    assert size is not None
    root = default_dir() if cache is True else Path(cache)
    if root.exists() and not root.is_dir():
        raise NeurocorrError(f"cache folder {root} is a file; give a folder (--cache-dir)")
    opened = ActivationCache(root, size)
    if write:
        opened.check_writable()
    return opened

