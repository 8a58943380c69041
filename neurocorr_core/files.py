"""Writing files all-or-none: the one atomic writer of neurocorr, and the checks made before any
work that a path can be written."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .errors import NeurocorrError

#: What a file is written from: text (UTF-8), bytes, or byte chunks written one after another
#: (a cache entry's header and its payload, without joining them into one copy).
Content = str | bytes | bytearray | memoryview | Sequence[bytes | bytearray | memoryview]


class WriteError(NeurocorrError):
    """A file could not be written; nothing of the write is left behind. ``path`` and ``cause``
    (the OSError) let a caller say it in its own words (the activation cache does)."""

    path: Path | None = None
    cause: OSError | None = None


def write_atomic(path: str | os.PathLike[str], content: Content) -> Path:
    """Write one file atomically (see :func:`write_files`); the path written."""
    return write_files({Path(path): content})[0]


def write_files(files: Mapping[Path, Content] | Mapping[str, Content]) -> list[Path]:
    """Write every file, or none of them: the one atomic writer of neurocorr.

    Each file is first written completely to a temporary file in its own folder and flushed to
    the disk; only when all of them are there are they renamed over their targets. A failure
    before the renaming removes the temporary files and nothing else, so files that existed are
    unchanged. A link is followed: its target is replaced, the link is kept. New files get the
    usual mode of a new file, ``0o666`` less the umask. Raises :class:`WriteError` naming the
    file, the cause and what to do."""
    files = {Path(path): content for path, content in files.items()}
    targets = _targets(files)
    staged: list[tuple[Path, Path, str]] = []  # (as given, real target, temporary file)
    try:
        for given, target in targets:
            staged.append((given, target, _stage(given, target, files[given])))
    except BaseException:
        _discard(tmp for _, _, tmp in staged)
        raise
    _rename_all(staged)
    return [given for given, _ in targets]


def _targets(files: Mapping[Path, Content]) -> list[tuple[Path, Path]]:
    """Each path with the file it really names (links followed); two spellings of one file are
    refused, since only one of the two outputs would survive."""
    seen: dict[str, Path] = {}
    pairs = []
    for given in files:
        real = os.path.realpath(given)
        if real in seen:
            raise WriteError(f"{seen[real]} and {given} are the same file; give each output its own file")
        seen[real] = given
        pairs.append((given, Path(real)))
    return pairs


def _stage(given: Path, target: Path, content: Content) -> str:
    """The temporary file holding ``content``, complete and on the disk, beside ``target``."""
    try:
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(given))
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise cannot_write(given, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600
            for chunk in _chunks(content):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())  # on the disk before the rename makes it the file
    except BaseException as exc:
        _discard([tmp])
        if isinstance(exc, OSError):
            raise cannot_write(given, exc) from None
        raise
    return tmp


def _chunks(content: Content) -> Sequence[bytes | bytearray | memoryview]:
    if isinstance(content, str):
        return [content.encode()]
    if isinstance(content, (bytes, bytearray, memoryview)):
        return [content]
    return content


def _rename_all(staged: list[tuple[Path, Path, str]]) -> None:
    """Rename every temporary file over its target. Should one rename fail (rare: the target
    became a folder meanwhile), the remaining temporaries and the files this call created are
    removed; a file it already replaced cannot be restored, and the error says which."""
    done: list[tuple[Path, Path, bool]] = []
    for i, (given, target, tmp) in enumerate(staged):
        existed = os.path.lexists(target)
        try:
            os.replace(tmp, target)
        except OSError as exc:
            _discard(t for _, _, t in staged[i:])
            _discard(str(t) for _, t, existed_before in done if not existed_before)
            replaced = [str(g) for g, _, existed_before in done if existed_before]
            note = f" ({', '.join(replaced)} already replaced)" if replaced else ""
            raise cannot_write(given, exc, note) from None
        done.append((given, target, existed))
    _sync_folders({target.parent for _, target, _ in done})


def _sync_folders(folders: Iterable[Path]) -> None:
    """Flush the renames themselves to the disk (where the system allows opening a folder)."""
    for folder in folders:
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


def _discard(paths: Iterable[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _umask() -> int:
    """The process's umask, read where the system shows it: setting it to read it back (the
    fallback) would, for a moment, let another thread create a world-writable file or folder."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: Path, option: str = "") -> None:
    """Fail before a (long) comparison, not after it: the folder exists, ``path`` is not a
    folder, and a file can be created there (a link: where it points)."""
    what = f" ({option})" if option else ""
    real = Path(os.path.realpath(path))
    if real.is_dir():
        raise NeurocorrError(f"cannot write {path}{what}: it is a folder; give a file name")
    if not real.parent.is_dir():
        raise NeurocorrError(f"cannot write {path}{what}: the folder {path.parent} does not exist; "
                             "create it or choose another path")
    try:
        fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".check")
    except OSError as exc:
        raise NeurocorrError(f"cannot write {path}{what}: {exc.strerror or exc}; choose a folder "
                             "you can write to") from None
    os.close(fd)
    os.unlink(tmp)


#: What to do about a failed write, by its cause.
_ADVICE = {
    errno.ENOSPC: "free some space on that disk or write to another one",
    errno.EDQUOT: "free some space within your disk quota or write elsewhere",
    errno.EACCES: "choose a folder you can write to",
    errno.EPERM: "choose a folder you can write to",
    errno.EROFS: "choose a folder on a writable disk",
    errno.EISDIR: "give a file name, not a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.ENAMETOOLONG: "choose a shorter name",
    errno.EFBIG: "the file is larger than this system lets you write (ulimit -f); raise the limit or write "
                 "it elsewhere",
}


def cannot_write(path: Path, exc: OSError, note: str = "") -> WriteError:
    """The one-line error for a file that could not be written."""
    if exc.errno == errno.ENOENT:
        advice = f"the folder {path.parent} does not exist; create it or choose another path"
    else:
        advice = _ADVICE.get(exc.errno or 0, "check the path or choose another one")
    kept = "" if note else "; nothing was written and existing files are unchanged"
    error = WriteError(f"cannot write {path}: {exc.strerror or exc}{note}{kept}; {advice}")
    error.path, error.cause = path, exc
    return error
