"""Writing results: CSV and JSON text, and a folder written all-or-nothing.

Every file is first written into a hidden temporary folder beside the results and only then
renamed into place, so an error (or Ctrl-C) part-way leaves no half-written file behind.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from neurocorr_core import NeurocorrError


def prepare_folder(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` if needed and check it can be written, before any long computation."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise NeurocorrError(f"--out {path} is a file, not a folder; choose a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryDirectory(dir=path, prefix=".neurocorr-check-").cleanup()
    except OSError as exc:
        raise NeurocorrError(f"cannot write to --out {path}: {exc.strerror}; choose another folder") from None
    return path


def write_files(folder: Path, files: Mapping[str, bytes | str]) -> list[Path]:
    """Write ``{name: content}`` into ``folder``: all into a temporary folder first, then
    renamed into place one by one. Returns the paths written."""
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".neurocorr-tmp-"))
    try:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            (tmp / name).write_bytes(data)
        written = []
        for name in files:
            os.replace(tmp / name, folder / name)
            written.append(folder / name)
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: Path, text: str) -> None:
    """Write one file whole or not at all (a temporary file beside it, then renamed): a kill
    part-way through a resumable run leaves no half-written cache entry to trip the next."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def to_json(data: Any) -> str:
    """JSON with NaN written as null (strict JSON has no NaN)."""
    return json.dumps(_clean(data), indent=2, allow_nan=False) + "\n"


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    return value


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV with a header from the first row's keys; NaN and None become empty cells,
    floats keep 6 significant decimals."""
    out = io.StringIO()
    if not rows:
        return ""
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue()


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return value
