"""Filling the atlas: adding reference models, and comparing every pair not yet compared.

``fill`` runs a :func:`~neurocorr_scale.grid.grid` over the atlas's models and stores each pair
as it finishes (an interrupted grid resumes where it stopped); ``add_model`` opens a model once
to check that it loads and to fingerprint it before storing it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from neurocorr_core import Comparison, NeurocorrError, PluginManager, Probe, get_plugin_manager, open_model
from neurocorr_core.probe_sources import load_indexed_probe
from neurocorr_scale.executor import model_source
from neurocorr_scale.grid import GridConfig, GridModel, GridResult, grid

from .store import TRUST, Atlas, AtlasModel, check_measurements, untrusted

#: ``on_pair(a, b, comparison)``: called as each pair of a grid finishes.
OnPair = Callable[[str, str, Comparison], None]


def add_model(atlas: Atlas, model: str | os.PathLike[str], name: str, *, measurements: Mapping[str, float],
              layers: str | None = None, provider: str | None = None,
              options: Mapping[str, Any] | None = None,
              plugin_manager: PluginManager | None = None) -> AtlasModel:
    """Open ``model`` (a path or ``module:callable``; checks it loads), fingerprint it and store it.
    ``options`` may hold ``trust_pickle`` to open a pickled model now; it is not stored."""
    if not isinstance(model, (str, os.PathLike)):
        raise NeurocorrError("an atlas stores models as file paths or 'module:callable' references, so that "
                             f"a grid can load them again; got an object of type {type(model).__name__}")
    measurements = check_measurements(measurements)
    atlas.check_free(name)
    opts = dict(options or {})
    opened = open_model(model, provider=provider, pm=plugin_manager or get_plugin_manager(), **opts)
    try:
        source = model_source(model, opened, untrusted(opts))  # trust does not change the model
    finally:
        opened.close()
    where = os.fspath(source.spec) if isinstance(source.spec, (str, os.PathLike)) else str(model)
    entry = AtlasModel(name, where, opened.name, source.fingerprint, layers, untrusted(opts), dict(measurements))
    atlas.add(entry)
    return entry


def grid_models(models: Iterable[AtlasModel], trust_pickle: bool = False) -> list[GridModel]:
    """The atlas's models as :class:`~neurocorr_scale.grid.GridModel` (each with its provider).
    ``trust_pickle``: the person running the command allows unpickling them (never stored)."""
    trust = {TRUST: True} if trust_pickle else {}
    return [GridModel(m.name, m.source, m.layers, m.framework, {**m.options, **trust},
                      {**m.options, TRUST: True} if m.legacy_trust else None) for m in models]


def recorder(atlas: Atlas, key: str, config: GridConfig, probe: Probe,
             fingerprints: Mapping[str, str | None]) -> OnPair:
    """An ``on_pair`` callback storing each finished reference pair under ``key``."""
    stored = {**config.to_dict(), "probe": probe.name, "samples": len(probe)}

    def store(a: str, b: str, comparison: Comparison) -> None:
        if a in fingerprints and b in fingerprints:
            atlas.record(key, stored, comparison, a, b, (fingerprints[a], fingerprints[b]))
    return store


def fill(atlas: Atlas, probe: str | os.PathLike[str] | np.ndarray | Probe, *, config: GridConfig | None = None,
         names: Sequence[str] | None = None, on_pair: OnPair | None = None,
         plugin_manager: PluginManager | None = None, trust_pickle: bool = False, **run: Any) -> GridResult:
    """Compare every pair of the atlas's models (or of ``names``) not yet compared under this
    configuration and probe, storing each pair as it finishes; returns the
    :class:`~neurocorr_scale.grid.GridResult` of the pairs run now. ``trust_pickle``: allow
    unpickling the models (the atlas never stores it). ``run``: the executor, shard and cache
    keywords of :func:`~neurocorr_scale.grid.grid`."""
    probe = load_indexed_probe(probe, "the atlas")
    config = config or GridConfig()
    refs = atlas.models()
    if names is not None:
        wanted = list(dict.fromkeys(names))
        for name in wanted:
            atlas.model(name)
        refs = [m for m in refs if m.name in wanted]
    if len(refs) < 2:
        raise NeurocorrError(f"a grid needs at least 2 models; the atlas {atlas.path} has {len(refs)}. "
                             "Add models with: neurocorr atlas add MODEL --name NAME --accuracy ...")
    key = config.key(probe)
    fps = {m.name: m.fingerprint for m in refs}
    store = recorder(atlas, key, config, probe, fps)

    def both(a: str, b: str, comparison: Comparison) -> None:
        store(a, b, comparison)
        if on_pair is not None:
            on_pair(a, b, comparison)
    return grid(grid_models(refs, trust_pickle), probe, config=config, skip=list(atlas.done(key)), on_pair=both,
                fingerprints=fps, plugin_manager=plugin_manager, **run)
