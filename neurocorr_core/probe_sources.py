"""Where a probe comes from: an object (:func:`~neurocorr_core.probe.to_probe`), a ``.npy`` file,
or any other text a plugin reads through the ``neurocorr_load_probe`` hook (neurocorr-data: the
offline data sets ``digits``, ``fashion-mnist`` and ``mnist``, IDX files, folders of images)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NeurocorrError
from .npy import read_npy
from .plugins import PluginManager, get_plugin_manager
from .probe import AnyProbe, Probe, StreamProbe, to_probe


def load_probe(spec: object, limit: int | None = None, plugin_manager: PluginManager | None = None) -> AnyProbe:
    """A probe from an array (numpy, torch, TensorFlow, JAX), a loader (torch DataLoader or
    Dataset: the first element of each item, labels ignored; tf.data.Dataset), a list of batches,
    an iterator of batches (read once and kept), a ``.npy`` file, or a text a plugin reads: with
    neurocorr-data, an IDX file (gzipped or not), a folder of images
    (``PATH?size=H,W&mean=...&std=...&mode=RGB|L``) or a built-in name (``digits``: scikit-learn's
    1,797 8x8 digits; ``fashion-mnist``, ``mnist``; each optionally with ``:train`` or ``:test``,
    default test). Loaders stream: the probe is never held whole, so a loader's order must be
    fixed (a shuffling DataLoader is refused). ``limit`` keeps the first samples only (a whole
    number, at least 1).
    """
    limit = check_limit(limit)
    probe = _from_text(spec, plugin_manager) if isinstance(spec, (str, os.PathLike)) else to_probe(spec)
    if limit is None:
        return probe
    return probe.limited(limit) if isinstance(probe, StreamProbe) else probe.head(limit)


def load_indexed_probe(spec: object, what: str) -> Probe:
    """:func:`load_probe` for work that needs random access to the samples (shards, grids): a
    streamed probe is refused, saying that ``what`` needs an array."""
    probe = load_probe(spec)
    if not isinstance(probe, Probe):
        raise NeurocorrError(f"{what} needs a probe it can index: an array or a .npy file (neurocorr extract "
                             "writes one), not a stream (DataLoader, tf.data, batches)")
    return probe


def check_limit(limit: Any) -> int | None:
    """None (every sample) or a whole number of samples, at least 1."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise NeurocorrError(f"probe limit must be a whole number of at least 1, got {limit!r} "
                             "(--probe-limit N keeps the first N probe samples)")
    return int(limit)


def _from_text(spec: str | os.PathLike[str], plugin_manager: PluginManager | None) -> Probe:
    text = os.fspath(spec)
    if not isinstance(text, str):
        raise NeurocorrError(f"probe path {text!r} is bytes; give it as text (str or pathlib.Path)")
    path = Path(text)
    exists = os.path.exists(text)  # False (not an error) for a name too long or with NUL
    if exists and path.suffix.lower() == ".npy":
        return Probe(read_npy(path), path.name)
    pm = plugin_manager or get_plugin_manager()
    probe = pm.load_probe(text)
    if probe is not None:
        return probe
    names = ", ".join(pm.probe_names()) or "none installed (pip install neurocorr-data)"
    if not exists:
        raise NeurocorrError(f"probe {text!r} is neither a file nor a built-in data set; built-ins: {names}; "
                             "files: .npy, or with neurocorr-data IDX files and folders of images")
    raise NeurocorrError(f"probe file {path} is neither .npy nor an IDX file an installed plugin reads "
                         "(neurocorr-data); save arrays with numpy.save (NCHW images or (N, features))")
