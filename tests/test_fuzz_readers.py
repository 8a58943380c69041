"""Property-based fuzzing of every reader of a file someone else may have written: .npy and IDX
probes (gzipped or not), experiment TOML files and activation-cache entries (atlas databases:
plugins/neurocorr-atlas/tests/test_fuzz_atlas.py).

Whatever the bytes, a reader returns a result or raises NeurocorrError (one line for the
user), never another exception, and its memory stays bounded: inputs under 64 KB may not
make it allocate more than PEAK_BYTES (tracemalloc: a header that declares gigabytes must not
be believed before the data is there).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import FUZZ, MAX_INPUT, blobs, bounded, scratch
from neurocorr_core import NeurocorrError, config
from neurocorr_core.cli import _parser
from neurocorr_core.probe_sources import load_probe
from neurocorr_data import datasets
from neurocorr_scale.cache import ActivationCache, EntryKey


def read_probe(path: Path) -> None:
    """Load a probe and pull its first batch (which converts and checks the values)."""
    probe = load_probe(path)
    next(probe.batches(16), None)


# -- .npy ----------------------------------------------------------------------------------------------
DESCRS = ["<f4", ">f8", "<i2", "|u1", "|b1", "<c8", "|O", "<U3", "|V8", "|S0", "<f2", "<m8", "bogus"]
dims = st.integers(min_value=-3, max_value=2**62)


@st.composite
def npy_files(draw: Any) -> bytes:
    """A .npy header (version 1 or 2, any descr, shape, order) and any payload."""
    shape = tuple(draw(st.lists(st.one_of(st.integers(0, 40), dims), max_size=4)))
    header = {"descr": draw(st.sampled_from(DESCRS)), "fortran_order": draw(st.booleans()), "shape": shape}
    text = draw(st.one_of(st.just(repr(header)), st.text(max_size=200))).encode("latin1", "replace")
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    major = draw(st.sampled_from([1, 2, 3, 9]))
    size = struct.pack("<H", len(text)) if major == 1 else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes([major, 0]) + size + text + draw(st.binary(max_size=4096))


@FUZZ
@given(st.one_of(blobs, npy_files(), npy_files().map(lambda b: b[:len(b) // 2])))
def test_npy_probe_any_bytes(data):
    with scratch("probe.npy", data) as path:
        bounded(lambda: read_probe(path))


def test_npy_reader_reads_real_arrays(tmp_path):
    """The reader the fuzz test drives reads a well-formed file back, and names a damaged one."""
    array = np.arange(24, dtype=np.float32).reshape(4, 6)
    np.save(tmp_path / "probe.npy", array)
    np.testing.assert_array_equal(bounded(lambda: load_probe(tmp_path / "probe.npy")).data, array)
    (tmp_path / "cut.npy").write_bytes((tmp_path / "probe.npy").read_bytes()[:-8])
    assert "truncated" in str(bounded(lambda: load_probe(tmp_path / "cut.npy")))


# -- IDX, gzipped or not ----------------------------------------------------------------------------------
@st.composite
def idx_files(draw: Any) -> bytes:
    """An IDX header (any type byte, 0 to 5 dimensions of any size) and any payload, maybe gzipped."""
    ndim = draw(st.integers(0, 5))
    head = bytes([0, 0, draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x01])), ndim])
    head += b"".join(draw(st.integers(0, 2**32 - 1)).to_bytes(4, "big") for _ in range(ndim))
    body = draw(st.one_of(st.binary(max_size=4096), st.integers(0, 3000).map(bytes)))
    data = head + body
    return gzip.compress(data) if draw(st.booleans()) else data


@FUZZ
@given(st.one_of(blobs, idx_files(), idx_files().map(lambda b: b[:max(1, len(b) - 7)]),
                 blobs.map(lambda b: b"\x1f\x8b" + b)))
def test_idx_probe_any_bytes(data):
    with scratch("probe-idx3-ubyte", data) as path:
        bounded(lambda: read_probe(path))
        bounded(lambda: datasets.read_idx(path))


def idx(shape: tuple[int, ...], body: bytes, type_byte: int = 0x08) -> bytes:
    return bytes([0, 0, type_byte, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape) + body


def test_idx_reader_reads_real_files(tmp_path):
    """The reader the fuzz test drives reads well-formed files back, gzipped or not."""
    pixels = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a-idx3-ubyte").write_bytes(idx(pixels.shape, pixels.tobytes()))
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(idx(pixels.shape, pixels.tobytes())))
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        np.testing.assert_array_equal(bounded(lambda n=name: datasets.read_idx(tmp_path / n)), pixels)


def test_gzip_bomb_is_refused_before_it_inflates(tmp_path):
    """A 10-image header followed by 64 MB of zeros (a 64 KB file): refused having read only what
    the header declares (the old reader inflated all 64 MB first, 3 GB for a 1.6 MB file)."""
    path = tmp_path / "bomb-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx((10, 28, 28), bytes(64 * 2**20))))
    assert path.stat().st_size < MAX_INPUT
    error = bounded(lambda: datasets.read_idx(path))
    assert isinstance(error, NeurocorrError) and "more bytes follow" in str(error)


def test_idx_declaring_terabytes_is_refused_without_reading(tmp_path):
    path = tmp_path / "huge-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx((2**31, 2**16, 2**16), bytes(1000), 0x0E)))
    error = bounded(lambda: datasets.read_idx(path))
    assert isinstance(error, NeurocorrError) and "more than the" in str(error)


# -- experiment TOML ---------------------------------------------------------------------------------------
COMPARE = config.subparser(_parser(), "compare")
KEYS = {"models": ["a", "b"], "compare": ["probe", "probe_limit", "batch_size", "metric", "metrics",
                                              "neurons", "depth_penalty", "signed", "seed", "layers_a",
                                              "trust_pickle", "memory_budget", "sample_neurons", "bogus"],
        "outputs": ["json", "csv", "report", "heatmap", "bogus"]}
names = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/\\\0"), max_size=300)
paths = st.one_of(names, st.just("digits"), st.just("grid_models:mlp_a"), st.just("out/{metric}.json"),
                  st.integers(256, 5000).map(lambda n: "x" * n))  # a name too long for the file system
scalars = st.one_of(st.integers(-2**70, 2**70), st.floats(), st.booleans(), paths, st.just("pearson"))
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(names, scalars, max_size=2))
#: Keys whose values are paths or names: mostly strings, sometimes anything.
PATH_KEYS = {"a", "b", "probe", "json", "csv", "report", "heatmap"}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


@st.composite
def experiments(draw: Any) -> bytes:
    """A syntactically valid experiment file whose keys and values are anything near the schema."""
    lines = []
    for table, keys in KEYS.items():
        if draw(st.booleans()):
            lines.append(f"[{table}]")
            for key in draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys))):
                value = draw(st.one_of(paths, paths, values) if key in PATH_KEYS else values)
                lines.append(f"{key} = {toml_value(value)}")
    return "\n".join(lines).encode()


@FUZZ
@given(st.one_of(blobs, experiments(), st.text(max_size=2000).map(str.encode)))
def test_experiment_toml_any_bytes(data):
    with scratch("experiment.toml", data) as path:
        bounded(lambda: config.load(path, COMPARE))


# -- activation cache entries ----------------------------------------------------------------------------
KEY = EntryKey("m" * 64, "act", "channel", "p" * 64)


@st.composite
def cache_entries(draw: Any) -> bytes:
    """The cache's magic, any header length, a JSON header near the real one, any payload (its
    SHA-256 right or not)."""
    payload = draw(st.binary(max_size=2048))
    header = {"key": draw(st.sampled_from([KEY.digest(), "x"])),
              "shape": draw(st.one_of(st.lists(st.integers(-5, 2**40), max_size=3), values)),
              "dtype": draw(st.sampled_from(["float32", "float64"])),
              "sha256": draw(st.sampled_from([hashlib.sha256(payload).hexdigest(), "0"])),
              "meta": draw(values)}
    text = draw(st.one_of(st.just(json.dumps(header)), st.just("[" * 5000), st.text(max_size=100))).encode()
    length = draw(st.one_of(st.just(len(text)), st.integers(0, 2**64 - 1)))
    return b"NCACT1\n" + struct.pack("<Q", length) + text + payload


def read_cache(root: Path) -> None:
    cache = ActivationCache(root)
    array = cache.get(KEY)
    assert array is None or isinstance(array, np.ndarray)
    cache.entries()
    cache.size()


@FUZZ
@given(st.one_of(blobs, cache_entries()))
def test_cache_entry_any_bytes(data):
    with tempfile.TemporaryDirectory(prefix="neurocorr-cache-") as folder:
        entry = ActivationCache(Path(folder)).path(KEY)
        entry.parent.mkdir(parents=True)
        entry.write_bytes(data)
        bounded(lambda: read_cache(Path(folder)))


def test_cache_reader_reads_real_entries(tmp_path):
    """A well-formed entry reads back through the reader the fuzz test drives."""
    cache = ActivationCache(tmp_path)
    cache.put(KEY, np.ones((3, 2), dtype=np.float32))
    np.testing.assert_array_equal(bounded(lambda: ActivationCache(tmp_path).get(KEY)), np.ones((3, 2)))
