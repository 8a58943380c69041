"""Property-based fuzzing of the atlas reader: an atlas database someone else may have written
(any bytes, a real atlas with damaged pages, any value in any column).

Whatever the bytes, the reader returns a result or raises NeurocorrError (one line for the
user), never another exception, and its memory stays bounded: inputs under 64 KB may not make it
allocate more than PEAK_BYTES (tracemalloc). The other readers (probes, experiment files, the
activation cache) are fuzzed by the core's tests/test_fuzz_readers.py, whose rules these are.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fuzzing import FUZZ, blobs, bounded, scratch  # the core's rules
from neurocorr_atlas.store import Atlas


# -- atlas -------------------------------------------------------------------------------------------------
def atlas_file(folder: Path) -> Path:
    """A real atlas with two models, a configuration and a comparison."""
    path = folder / "atlas.db"
    Atlas(path, create=True).close()
    db = sqlite3.connect(path)
    with db:
        for name in ("m1", "m2"):
            db.execute("INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (name, f"/models/{name}.pt", "torch", "f" * 64, None, "{}", "2024-01-01T00:00:00"))
            db.execute("INSERT INTO measurements VALUES (?, ?, ?)", (name, "accuracy", 0.9))
        db.execute("INSERT INTO configurations VALUES (?, ?, ?, ?)", ("k", "{}", "digits", 100))
        db.execute("INSERT INTO comparisons VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   ("k", "m1", "m2", None, None, 0.5, 0.6, 0.55, "{}", "2024-01-01T00:00:00"))
    db.close()
    return path


with tempfile.TemporaryDirectory() as _folder:
    ATLAS_BYTES = atlas_file(Path(_folder)).read_bytes()


def read_atlas(path: Path) -> None:
    with Atlas(path) as atlas:
        models = atlas.models()
        atlas.configurations()
        done = atlas.done("k")
        atlas.symmetric("k", [m.name for m in models])
        for model in models:
            atlas.model(model.name)
        assert isinstance(done, dict)


@st.composite
def mutated_atlases(draw: Any) -> bytes:
    """A real atlas file with some bytes overwritten (pages damaged, not only the header)."""
    data = bytearray(ATLAS_BYTES)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at:at + 4] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data[:len(ATLAS_BYTES)])


@FUZZ
@given(st.one_of(blobs, mutated_atlases(), blobs.map(lambda b: b"SQLite format 3\0" + b)))
def test_atlas_file_any_bytes(data):
    with scratch("atlas.db", data) as path:
        bounded(lambda: read_atlas(path))


json_values = st.recursive(st.one_of(st.none(), st.integers(), st.floats(), st.text()),
                           lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=10)
cells = st.one_of(st.none(), st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=300),
                  st.binary(max_size=100), json_values.map(json.dumps))


@FUZZ
@given(st.lists(cells, min_size=7, max_size=7), st.lists(cells, min_size=3, max_size=3),
       st.lists(cells, min_size=4, max_size=4), st.lists(cells, min_size=10, max_size=10))
def test_atlas_rows_any_values(model, measurement, configuration, comparison):
    """Rows a damaged (or hand-edited) atlas may hold: any SQLite value in any column."""
    with scratch("atlas.db", ATLAS_BYTES) as path:
        db = sqlite3.connect(path)
        with db:  # no constraint is enforced here (foreign keys are off), as in a hand-edited file
            db.execute("INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?, ?, ?, ?)", model)
            db.execute("INSERT OR IGNORE INTO measurements VALUES (?, ?, ?)", measurement)
            db.execute("INSERT OR IGNORE INTO configurations VALUES (?, ?, ?, ?)", configuration)
            db.execute("INSERT OR IGNORE INTO comparisons VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", comparison)
        db.close()
        bounded(lambda: read_atlas(path))
