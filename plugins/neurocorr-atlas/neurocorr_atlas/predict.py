"""Predicting a new model's quality from the reference atlas (docs/atlas.md).

:func:`predict` compares the new model with every reference (filling the reference grid where
pairs are missing) and applies an estimator of :mod:`neurocorr_atlas.estimators` to each shared
measure; :func:`evaluate` predicts every reference from the others (leave-one-out) beside the
baseline, the mean of the references.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from neurocorr_core import NeurocorrError, PluginManager, Probe
from neurocorr_core.models import describe
from neurocorr_core.probe_sources import load_indexed_probe
from neurocorr_scale.grid import GridConfig, GridModel, grid

from .estimators import (
    ESTIMATORS,
    MIN_REFERENCES,
    LeaveOneOut,
    Prediction,
    baseline_leave_one_out,
    check_estimator,
    estimate,
    leave_one_out,
)
from .fill import fill, grid_models, recorder
from .store import Atlas


def _measured(models: Sequence[Any], measure: str) -> np.ndarray:
    return np.array([i for i, m in enumerate(models) if measure in m.measurements], dtype=int)


def _measures(models: Sequence[Any], chosen: Sequence[str] | None) -> list[str]:
    known = sorted({k for m in models for k in m.measurements})
    if chosen is None:
        return [k for k in known if len(_measured(models, k)) >= MIN_REFERENCES]
    for k in chosen:
        if k not in known:
            raise NeurocorrError(f"no reference has the measurement {k!r}; measurements in the atlas: "
                                 f"{', '.join(known) or 'none'}")
    return list(chosen)


@dataclass
class PredictionReport:
    model: str
    probe: str
    samples: int
    config: str
    scores: dict[str, float]
    predictions: list[Prediction]
    computed: int

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "predictions"},
                "predictions": [asdict(p) for p in self.predictions]}


def predict(model: object, atlas: Atlas, probe: str | os.PathLike[str] | np.ndarray | Probe, *,
            name: str | None = None, layers: str | None = None, provider: str | None = None,
            options: dict[str, Any] | None = None, config: GridConfig | None = None,
            estimator: str = "weighted", level: float = 0.9, measures: Sequence[str] | None = None,
            plugin_manager: PluginManager | None = None, trust_pickle: bool = False,
            **run: Any) -> PredictionReport:
    """Compare ``model`` with the atlas's references over ``probe`` and estimate each measure.

    ``trust_pickle``: allow unpickling the references (the atlas never stores that trust; the
    new model's own is ``options={"trust_pickle": True}``).

    Reference pairs not yet in the atlas under this configuration are compared first and
    stored; the new model's comparisons are not stored. ``run``: the executor, shard and cache
    keywords of :func:`~neurocorr_scale.grid.grid`, and ``on_pair(a, b, comparison)``, called as
    each pair is done.
    """
    check_estimator(estimator)
    if not 0 < level < 1:
        raise NeurocorrError(f"the interval level must lie in (0, 1), got {level}")
    probe = load_indexed_probe(probe, "the atlas")
    config = config or GridConfig()
    refs = atlas.models()
    chosen = _measures(refs, measures)
    if not chosen:
        raise NeurocorrError(f"the atlas {atlas.path} has no measurement that {MIN_REFERENCES} or more "
                             "references "
                             "share; add references with: neurocorr atlas add MODEL --name NAME --accuracy "
                             "0.97")
    label = name or f"new:{describe(model)}"
    if label in {m.name for m in refs}:
        raise NeurocorrError(f"the new model's name {label!r} is a reference's name; give it another "
                             "(--name)")
    key = config.key(probe)
    fps = {m.name: m.fingerprint for m in refs}
    ref_names = [m.name for m in refs]
    done = {frozenset(p) for p in atlas.done(key)}
    pairs = [(a, b) for i, a in enumerate(ref_names) for b in ref_names[i + 1:]
             if frozenset((a, b)) not in done]
    pairs += [(label, r) for r in ref_names]
    new = GridModel(label, model, layers, provider, options or {})
    store, shown = recorder(atlas, key, config, probe, fps), run.pop("on_pair", None)

    def on_pair(a: str, b: str, comparison: Any) -> None:  # store reference pairs; then the caller's
        store(a, b, comparison)
        if shown is not None:
            shown(a, b, comparison)
    result = grid([new, *grid_models(refs, trust_pickle)], probe, config=config, pairs=pairs,
                  on_pair=on_pair, fingerprints=fps, plugin_manager=plugin_manager, **run)
    s_new = result.symmetric[0, 1:]
    scores = atlas.symmetric(key, ref_names)
    out = []
    for measure in chosen:
        idx = _measured(refs, measure)
        y = np.array([refs[i].measurements[measure] for i in idx])
        out.append(estimate(scores[np.ix_(idx, idx)], y, s_new[idx], measure=measure,
                            names=[ref_names[i] for i in idx], estimator=estimator, level=level))
    scores_new = dict(zip(ref_names, map(float, s_new), strict=True))
    return PredictionReport(label, probe.name, len(probe), key, scores_new,
                            out, len(result.computed))


def evaluate(atlas: Atlas, probe: str | os.PathLike[str] | np.ndarray | Probe, *,
             config: GridConfig | None = None,
             estimators: Sequence[str] = ESTIMATORS, measures: Sequence[str] | None = None,
             plugin_manager: PluginManager | None = None, trust_pickle: bool = False,
             **run: Any) -> list[LeaveOneOut]:
    """Leave-one-out over the references (the grid filled first where pairs are missing): each
    reference's measures predicted from the others, for each estimator, beside the baseline.
    ``trust_pickle``: allow unpickling the references (never stored in the atlas)."""
    probe = load_indexed_probe(probe, "the atlas")
    config = config or GridConfig()
    for estimator in estimators:
        check_estimator(estimator)
    fill(atlas, probe, config=config, plugin_manager=plugin_manager, trust_pickle=trust_pickle, **run)
    refs = atlas.models()
    names = [m.name for m in refs]
    scores = atlas.symmetric(config.key(probe), names)
    out = []
    for measure in _measures(refs, measures):
        idx = _measured(refs, measure)
        if len(idx) < MIN_REFERENCES:
            raise NeurocorrError(f"leave-one-out on {measure} needs at least {MIN_REFERENCES} references "
                                 f"with it; the atlas has {len(idx)}")
        y = np.array([refs[i].measurements[measure] for i in idx])
        sub = scores[np.ix_(idx, idx)]
        base = baseline_leave_one_out(y)
        for estimator in estimators:
            pred = leave_one_out(sub, y, estimator)
            out.append(LeaveOneOut(measure, estimator, [names[i] for i in idx], y.tolist(), pred.tolist(),
                                   base.tolist(), float(np.mean(np.abs(y - pred))),
                                   float(np.mean(np.abs(y - base)))))
    return out
