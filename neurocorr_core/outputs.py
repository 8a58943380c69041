"""The outputs of a comparison as a set: the kinds a command can write (JSON, CSV, HTML report,
heatmap image), their checks before any work, their rendering in memory, and the writing of
all of them or none; and the CSV table itself.

Its own module because it is what the commands share (``compare``, ``run``, ``predict`` check
and write their outputs here), while :mod:`neurocorr_core.report` is one of the kinds: the HTML
report, which knows nothing of the others.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import NeurocorrError
from .files import check_writable, write_files
from .report import html_report
from .result import DIRECTIONS, Comparison

#: The output kinds, by the CLI option that asks for them (``--json OUT`` ...).
OUTPUT_KINDS = ("json", "csv", "report", "heatmap")


# -- checking and writing the outputs ---------------------------------------------------------------
#: The path that means standard output (``--json -``, ``--csv -``).
STDOUT = "-"
#: The outputs that can go to standard output: text a script reads.
STDOUT_KINDS = ("json", "csv")


def check_outputs(outputs: Mapping[str, str | os.PathLike[str]]) -> None:
    """Refuse, before any work, outputs that cannot all be written: ``-`` for an image or a
    report, two outputs to standard output or to one file (by any spelling or link), a path
    in a missing or read-only folder, a folder. ``outputs``: ``{kind: path}`` as given."""
    to_stdout = [kind for kind, path in outputs.items() if str(path) == STDOUT]
    for kind in to_stdout:
        if kind not in STDOUT_KINDS:
            raise NeurocorrError(f"--{kind} {STDOUT}: only {' and '.join(f'--{k}' for k in STDOUT_KINDS)} "
                                 "can write to standard output; give a file name")
    if len(to_stdout) > 1:
        raise NeurocorrError(f"{' and '.join(f'--{k}' for k in to_stdout)} both write to standard output, "
                             "where they would mix; send one of them to a file")
    files = {kind: Path(path) for kind, path in outputs.items() if str(path) != STDOUT}
    _check_distinct(files)
    if "heatmap" in files:
        _heatmap_format(files["heatmap"])
    if {"heatmap", "report"} & set(files) and importlib.util.find_spec("matplotlib") is None:
        from .plots import INSTALL_HINT

        raise NeurocorrError(f"--{' and --'.join(k for k in ('report', 'heatmap') if k in files)} need "
                             f"matplotlib, which is not installed; install it with: {INSTALL_HINT}")
    for kind, path in files.items():
        check_writable(path, f"--{kind}")


def _check_distinct(files: Mapping[str, Path]) -> None:
    """Two outputs naming one file would leave only the last one written."""
    seen: dict[str, str] = {}
    for kind, path in files.items():
        real = os.path.realpath(path)
        if real in seen:
            raise NeurocorrError(f"--{seen[real]} and --{kind} both name the file {path}; only one of the "
                                 "two would be kept, so give each output its own file")
        seen[real] = kind


def write_all(files: Mapping[Path, bytes]) -> list[Path]:
    """Write every file atomically, or none (:func:`neurocorr_core.files.write_files`): on a
    failure, files that existed are unchanged and no temporary file is left."""
    return write_files(files)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send what is printed meanwhile (by a model builder, a plugin, a worker process, C code)
    to standard error, so that standard output holds only the data (``--json -``)."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
        os.dup2(2, 1)  # the file descriptor itself: C code and child processes write there
    except OSError:  # no standard output or error to redirect at that level
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def render_outputs(result: Comparison, outputs: Mapping[str, str | os.PathLike[str]]) -> dict[Path, bytes]:
    """The bytes of each requested output, ``{kind: path}`` with kind in :data:`OUTPUT_KINDS`,
    rendered in memory so that nothing is written until everything rendered."""
    makers: dict[str, Callable[[Path], bytes]] = {
        "json": lambda _: result.to_json().encode(),
        "csv": lambda _: csv_text([result]).encode(),
        "report": lambda _: html_report(result).encode(),
        "heatmap": lambda path: _heatmap_bytes(result, path),
    }
    _check_distinct({kind: Path(path) for kind, path in outputs.items()})
    rendered: dict[Path, bytes] = {}
    for kind, path in outputs.items():
        if kind not in makers:
            raise NeurocorrError(f"unknown output {kind!r}; choose from {', '.join(OUTPUT_KINDS)}")
        rendered[Path(path)] = makers[kind](Path(path))
    return rendered


def _heatmap_bytes(result: Comparison, path: Path) -> bytes:
    from . import plots

    return plots.to_bytes(plots.heatmaps(result), _heatmap_format(path))


def _heatmap_format(path: Path) -> str:
    from . import plots

    fmt = path.suffix.lstrip(".").lower()
    if fmt not in plots.FORMATS:
        raise NeurocorrError(f"cannot write the heatmap as {path.name!r}: name the file .png or .svg")
    return fmt


# -- CSV ------------------------------------------------------------------------------------------
CSV_COLUMNS = ("metric", "scope", "side", "layer", "index", "depth", "kind", "neurons", "dead", "score")


def csv_rows(result: Comparison) -> list[dict[str, Any]]:
    """Tidy rows: three ``network`` rows (sides a_to_b, b_to_a, symmetric) with the network
    score, then one ``layer`` row per selected layer of A and of B (side a or b) with its neuron
    count, dead neurons and mean best-match score. Columns: :data:`CSV_COLUMNS`."""
    metric = result.config.get("metric", "")
    rows: list[dict[str, Any]] = [
        {"metric": metric, "scope": "network", "side": side, "score": value}
        for side, value in result.score.to_dict().items() if side in DIRECTIONS
    ]
    for side, layers in (("a", result.layers_a), ("b", result.layers_b)):
        rows += [{"metric": metric, "scope": "layer", "side": side, "layer": lr.info.name,
                  "index": lr.index, "depth": lr.info.depth, "kind": lr.info.kind,
                  "neurons": lr.neurons, "dead": lr.dead, "score": lr.score} for lr in layers]
    return rows


def csv_text(results: Iterable[Comparison]) -> str:
    """CSV of :func:`csv_rows` for one or more comparisons (e.g. one per metric)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for result in results:
        writer.writerows(csv_rows(result))
    return buffer.getvalue()
