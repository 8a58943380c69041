"""The result of a comparison, serialisable to JSON."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NeurocorrError
from .interfaces import LayerInfo
from .summary import summary as _summary_text


@dataclass(frozen=True)
class LayerResult:
    """A selected layer: its info, its depth index among the selected layers, its neuron
    count in the chosen view, how many of them were constant (dead) over the probe, and
    the mean best-match score of its neurons in the other model (network-score terms)."""

    info: LayerInfo
    index: int
    neurons: int
    dead: int
    score: float
    #: How many of its neurons were sampled (None: all of them; see ``sample_neurons``).
    sampled: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.info.to_dict(), "index": self.index, "neurons": self.neurons,
                "dead": self.dead, "score": self.score, "sampled": self.sampled}


#: The network score's entries, as reports show them: the headline numbers of the HTML report and the
#: ``network`` rows of the CSV; any other entry of a score (an interval, a p-value) is listed under them.
DIRECTIONS = ("a_to_b", "b_to_a", "symmetric")


@dataclass(frozen=True)
class Score:
    a_to_b: float
    b_to_a: float

    @property
    def symmetric(self) -> float:
        return (self.a_to_b + self.b_to_a) / 2

    def to_dict(self) -> dict[str, float]:
        return {"a_to_b": self.a_to_b, "b_to_a": self.b_to_a, "symmetric": self.symmetric}


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or Infinity: such a value is written as null."""
    return None if value is None or not np.isfinite(value) else float(value)


@dataclass(frozen=True)
class Significance:
    """Is the symmetric network score more than chance? (docs/significance.md)

    Permutation null: B's probe order shuffled ``permutations`` times, the score recomputed
    each time; ``z = (score - null_mean) / null_std`` and the one-sided
    ``p = (1 + #{null >= score}) / (permutations + 1)``. Bootstrap: the probe samples drawn
    with replacement ``bootstrap`` times; ``ci`` is the percentile interval at ``confidence``,
    ``ci_basic`` the basic (reverse percentile) interval ``[2 s - q_high, 2 s - q_low]``, and
    ``bootstrap_bias`` the mean replicate minus the score (a best match is inflated by the
    repeated samples of a resample; when the bias is not small beside ``bootstrap_std``,
    prefer ``ci_basic`` or a larger probe). Fields of a part that was not run are None.
    """

    seed: int
    permutations: int = 0
    null_mean: float | None = None
    null_std: float | None = None
    z: float | None = None
    p_value: float | None = None
    bootstrap: int = 0
    confidence: float = 0.95
    ci: tuple[float, float] | None = None
    bootstrap_std: float | None = None
    bootstrap_bias: float | None = None
    ci_basic: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"statistic": "symmetric", "seed": self.seed, "permutations": self.permutations,
                "permuted": "probe order of model B", "null_mean": _finite(self.null_mean),
                "null_std": _finite(self.null_std), "z": _finite(self.z), "p_value": _finite(self.p_value),
                "bootstrap": self.bootstrap, "confidence": self.confidence,
                "ci": _pair(self.ci), "ci_basic": _pair(self.ci_basic),
                "bootstrap_std": _finite(self.bootstrap_std), "bootstrap_bias": _finite(self.bootstrap_bias)}


def _pair(ci: tuple[float, float] | None) -> list[float | None] | None:
    return None if ci is None else [_finite(ci[0]), _finite(ci[1])]


@dataclass(frozen=True)
class Comparison:
    """What :func:`neurocorr_core.compare` returns.

    ``layer_table[i, j]``: mean best-match score (no depth penalty) of the neurons of
    ``layers_a[i]`` within ``layers_b[j]``; ``layer_table_ba`` the same from B to A (for a
    layer-level metric: the metric's own table and its transpose).
    ``partner_a[k]``: index (into B's concatenated neurons) of neuron k of A's match, -1
    for none (unmatched, or not sampled); for a layer-level metric, layer indices.
    ``value_a[k]``: neuron k of A's term of the network score: its match's |r| (r with
    ``absolute=False``) divided by the depth penalty; 0 for a constant or unmatched neuron, NaN
    for one not sampled; per layer for a layer-level metric. ``partner_b``, ``value_b``: the
    same from B to A.
    ``matched_fraction``: share of each side's (sampled) neurons that got a partner (below
    1 for ``mutual``, and for ``hungarian`` on the larger side). ``standard_error``: of the
    scores estimated from sampled neurons (None when every neuron was used).
    """

    model_a: str
    model_b: str
    samples: int
    score: Score
    layers_a: list[LayerResult]
    layers_b: list[LayerResult]
    layer_table: np.ndarray
    layer_table_ba: np.ndarray
    partner_a: np.ndarray
    partner_b: np.ndarray
    value_a: np.ndarray
    value_b: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    matched_fraction: dict[str, float] = field(default_factory=dict)
    standard_error: dict[str, float] | None = None
    significance: Significance | None = None

    def __repr__(self) -> str:
        """One screen line or two: the models, the network score, the layers; the rest in summary()."""
        c = self.config
        return (f"Comparison({self.model_a!r} vs {self.model_b!r}: A->B {self.score.a_to_b:.4f}, "
                f"B->A {self.score.b_to_a:.4f}, symmetric {self.score.symmetric:.4f}; {self.samples} samples, "
                f"{c.get('metric')}/{c.get('matching')}, {c.get('neurons')} view, {len(self.layers_a)} x "
                f"{len(self.layers_b)} layers; .summary(), .layer_frame())")

    def summary(self) -> str:
        """The plain-text report the CLI prints: scores, dead neurons, each layer."""
        return _summary_text(self)

    def layer_frame(self, direction: str = "a_to_b") -> Any:
        """The layer table as a pandas DataFrame, A's layer names down and B's across (``b_to_a``:
        B's down, A's across): the mean best-match score of the row layer's neurons in the column layer."""
        pd = _pandas()
        if direction not in ("a_to_b", "b_to_a"):
            raise NeurocorrError(f"direction must be 'a_to_b' or 'b_to_a', got {direction!r}")
        rows, cols = (self.layers_a, self.layers_b) if direction == "a_to_b" else (self.layers_b, self.layers_a)
        table = self.layer_table if direction == "a_to_b" else self.layer_table_ba
        if table.shape != (len(rows), len(cols)):  # one layer a side: the table is the score itself
            table = np.full((len(rows), len(cols)), getattr(self.score, direction))
        down, across = ("A", "B") if direction == "a_to_b" else ("B", "A")
        return pd.DataFrame(table, index=pd.Index([lr.info.name for lr in rows], name=down),
                            columns=pd.Index([lr.info.name for lr in cols], name=across))

    def to_pandas(self) -> Any:
        """One row per selected layer of either model (side, layer, kind, neurons, dead, score), as a
        pandas DataFrame; :meth:`layer_frame` gives the layer x layer table."""
        pd = _pandas()
        rows = [{"side": side, "layer": lr.info.name, "kind": lr.info.kind, "depth": lr.index,
                 "neurons": lr.neurons, "dead": lr.dead, "score": lr.score}
                for side, layers in (("A", self.layers_a), ("B", self.layers_b)) for lr in layers]
        return pd.DataFrame(rows).set_index(["side", "layer"])

    @property
    def dead_neurons(self) -> dict[str, dict[str, int]]:
        return {"a": {lr.info.name: lr.dead for lr in self.layers_a},
                "b": {lr.info.name: lr.dead for lr in self.layers_b}}

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "samples": self.samples,
            "score": self.score.to_dict(),
            "layers_a": [lr.to_dict() for lr in self.layers_a],
            "layers_b": [lr.to_dict() for lr in self.layers_b],
            "layer_table": self.layer_table.tolist(),
            "layer_table_ba": self.layer_table_ba.tolist(),
            "dead_neurons": self.dead_neurons,
            "partner_a": self.partner_a.tolist(),
            "partner_b": self.partner_b.tolist(),
            "value_a": _floats(self.value_a),
            "value_b": _floats(self.value_b),
            "config": self.config,
            "versions": self.versions,
            "matched_fraction": self.matched_fraction,
            "standard_error": self.standard_error,
            "significance": None if self.significance is None else self.significance.to_dict(),
        }

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The JSON text; written atomically to ``path`` when given (see :func:`write_files`)."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            write_atomic(Path(path), text)
        return text


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise NeurocorrError("tables as DataFrames need pandas, which is not installed: pip install pandas "
                             "(without it, read result.layer_table with result.layers_a/layers_b)") from None
    return pandas


# -- writing files ----------------------------------------------------------------------------------
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


def _floats(values: np.ndarray) -> list[float | None]:
    """JSON has no NaN: None stands for a neuron without a match."""
    return [float(v) if np.isfinite(v) else None for v in values.tolist()]
