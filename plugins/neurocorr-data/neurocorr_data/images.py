"""A probe from a folder of image files: ``PATH`` or ``PATH?size=H,W&mean=...&std=...&mode=L``.

Every image file of the folder (sorted by name), read with Pillow, as NCHW float32 in [0, 1],
then ``(x - mean) / std`` per channel. Nothing is resized unless ``size`` says so: images of
different sizes without it are refused, naming two of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neurocorr_core.errors import NeurocorrError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
MODES = {"RGB": 3, "L": 1}
_FORM = "PATH?size=H,W&mean=M[,M,M]&std=S[,S,S]&mode=RGB|L"


def folder_of(text: str) -> tuple[str, str] | None:
    """(folder, options) when ``text`` names a folder, with or without ``?options``; else None."""
    if os.path.isdir(text):
        return text, ""
    folder, sep, query = text.rpartition("?")
    return (folder, query) if sep and os.path.isdir(folder) else None


def probe_from_text(folder: str, query: str) -> np.ndarray:
    """:func:`load_images` with the options of ``a=1&b=2`` (see the module's docstring)."""
    options: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        if not sep or key not in ("size", "mean", "std", "mode"):
            raise NeurocorrError(f"image probe option {item!r} is not one of size=, mean=, std=, mode=; write {_FORM}")
        options[key] = value
    size = _numbers(options["size"], "size", int) if "size" in options else None
    if size is not None and len(size) == 1:
        size = size * 2  # size=32: 32x32
    return load_images(folder, size=size, mean=_numbers(options.get("mean", "0"), "mean", float),
                       std=_numbers(options.get("std", "1"), "std", float), mode=options.get("mode", "RGB"))


def _numbers(text: str, key: str, kind: type) -> list:
    try:
        return [kind(v) for v in text.split(",")]
    except ValueError:
        raise NeurocorrError(f"image probe option {key}={text!r} is not a comma-separated list of numbers; "
                             f"write {_FORM}") from None


def load_images(folder: str | os.PathLike[str], size: Sequence[int] | None = None, mean: Sequence[float] = (0.0,),
                std: Sequence[float] = (1.0,), mode: str = "RGB") -> np.ndarray:
    """(N, C, H, W) float32: the folder's images sorted by file name, in [0, 1] (pixel / 255),
    then ``(x - mean) / std`` per channel (one value, or one per channel). ``size``: (height,
    width) to resize to (bilinear); None refuses images of different sizes. ``mode``: RGB or L."""
    try:
        from PIL import Image
    except ImportError:
        raise NeurocorrError("an image-folder probe needs Pillow: pip install pillow") from None
    if mode not in MODES:
        raise NeurocorrError(f"image probe mode {mode!r} is not RGB or L (grey)")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise NeurocorrError(f"image probe size {tuple(size)} is not (height, width) of at least 1 pixel each")
    shift, scale = _per_channel(mean, "mean", mode), _per_channel(std, "std", mode)
    if (scale == 0).any():
        raise NeurocorrError(f"image probe std {tuple(std)} holds a 0: every std must be nonzero")
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    if not files:
        raise NeurocorrError(f"probe {os.fspath(folder)!r} is a folder with no image files ({', '.join(SUFFIXES)}); "
                             "give a folder of images, or a .npy or IDX file")
    out: np.ndarray | None = None
    for i, path in enumerate(files):
        try:
            with Image.open(path) as opened:
                image = opened.convert(mode)
            if size is not None:
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32).reshape(image.height, image.width, -1)
        except (OSError, ValueError) as exc:  # Pillow's UnidentifiedImageError is an OSError
            raise NeurocorrError(f"cannot read image {path}: {exc}; remove or replace the file") from None
        if out is None:
            out = np.empty((len(files), pixels.shape[2], *pixels.shape[:2]), dtype=np.float32)
        elif pixels.shape[:2] != out.shape[2:]:
            raise NeurocorrError(f"images differ in size: {files[0].name} is {out.shape[2]}x{out.shape[3]}, "
                                 f"{path.name} is {pixels.shape[0]}x{pixels.shape[1]} (height x width); give "
                                 "size=H,W to resize them all (e.g. --probe 'images/?size=224')")
        out[i] = pixels.transpose(2, 0, 1) / np.float32(255)
    assert out is not None
    return (out - shift) / scale


def _per_channel(values: Sequence[float], key: str, mode: str) -> np.ndarray:
    """``values`` as a (C, 1, 1) array: one value for every channel, or one per channel."""
    array = np.asarray(values, dtype=np.float32).reshape(-1)
    if array.size not in (1, MODES[mode]):
        raise NeurocorrError(f"image probe {key} has {array.size} values; mode {mode} has {MODES[mode]} "
                             "channel(s): give one value, or one per channel")
    return np.broadcast_to(array, (MODES[mode],)).reshape(-1, 1, 1).copy()
