"""Many-model grids: N models compared pairwise over one probe, as an N x N score matrix.

Every model is opened once in this process to list its layers (a 2-sample forward pass) and
fingerprint it; the comparisons themselves run on an executor (docs/scale-out.md): each model's
neurons are extracted once per probe shard and shared by all its pairs, and each pair is handed
back (``on_pair``) as soon as its merged metrics are finished, so a caller can store it before
the next one arrives (the atlas commits each pair: an interrupted grid resumes from there).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurocorr_core.assemble import make_comparison
from neurocorr_core.compare import open_model
from neurocorr_core.errors import NeurocorrError
from neurocorr_core.interfaces import Executor, MatchingStrategy, Metric
from neurocorr_core.models import describe, resolve_model
from neurocorr_core.options import Options
from neurocorr_core.pipeline import Plan, Side, build_plan, constant_policy
from neurocorr_core.plugins import PluginManager, get_plugin_manager
from neurocorr_core.probe import Probe
from neurocorr_core.probe_sources import load_indexed_probe
from neurocorr_core.result import Comparison
from neurocorr_core.scale_out import default_shards, get_executor
from neurocorr_core.selection import Selector, select_layers

from .cache import open_cache, probe_fingerprint
from .executor import (
    Extraction,
    ModelSource,
    PairJob,
    model_source,
    run_pairs,
)


@dataclass(frozen=True)
class GridConfig:
    """The options every comparison of a grid shares (those of ``compare``; the layers are per
    model). Two grids with equal :meth:`key` on the same probe give the same scores."""

    metric: str = "pearson"
    matching: str = "max"
    neurons: str = "channel"
    depth_penalty: str = "paper"
    absolute: bool = True
    constant_neurons: str | None = None
    metric_options: Mapping[str, Any] = field(default_factory=dict)
    matching_options: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = 256

    def __post_init__(self) -> None:
        self.options()  # checked as compare()'s options are, with the same messages

    def options(self) -> Options:
        """These options as :func:`~neurocorr_core.compare.compare` takes them."""
        return Options(metric=self.metric, matching=self.matching, neurons=self.neurons,
                       depth_penalty=self.depth_penalty, absolute=self.absolute,
                       constant_neurons=self.constant_neurons, metric_options=dict(self.metric_options),
                       matching_options=dict(self.matching_options), batch_size=self.batch_size)

    @classmethod
    def from_options(cls, options: Options) -> GridConfig:
        """The grid options of ``options`` (those that are not per pair: the layers, sampling,
        significance and scale-out options are not part of a grid's configuration)."""
        return cls(metric=options.metric, matching=options.matching, neurons=options.neurons,
                   depth_penalty=options.depth_penalty, absolute=options.absolute,
                   constant_neurons=options.constant_neurons, metric_options=dict(options.metric_options or {}),
                   matching_options=dict(options.matching_options or {}), batch_size=options.batch_size)

    def to_dict(self) -> dict[str, Any]:
        """The options that decide the scores (not the batch size)."""
        return {"metric": self.metric, "matching": self.matching, "neurons": self.neurons,
                "depth_penalty": self.depth_penalty, "absolute": self.absolute,
                "constant_neurons": self.constant_neurons, "metric_options": dict(self.metric_options),
                "matching_options": dict(self.matching_options)}

    def key(self, probe: Probe) -> str:
        """A digest of these options and the probe's samples: the atlas's configuration key."""
        text = json.dumps({**self.to_dict(), "probe": probe_fingerprint(probe.data)}, sort_keys=True,
                          default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GridModel:
    """A model of a grid: its unique ``name``, the model (path, ``module:callable``, or an object
    for the local executor), its layer selector, and optionally its provider and options.
    ``fingerprint_options``: the options its expected fingerprint was computed with (default:
    ``options`` without ``trust_pickle``, which does not change the model)."""

    name: str
    model: object
    layers: Selector = None
    provider: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    fingerprint_options: Mapping[str, Any] | None = None


@dataclass
class GridResult:
    """``scores[i, j]``: the network score of model i towards model j (NaN: not compared in this
    call, e.g. the diagonal or pairs skipped because they were done); ``comparisons``: the
    comparisons run, by pair of names; ``computed``: those pairs in completion order."""

    names: list[str]
    scores: np.ndarray
    comparisons: dict[tuple[str, str], Comparison]
    computed: list[tuple[str, str]]
    executor: str
    shards: int
    seconds: float

    @property
    def symmetric(self) -> np.ndarray:
        return (self.scores + self.scores.T) / 2


def check_names(models: Sequence[GridModel]) -> None:
    seen: set[str] = set()
    for m in models:
        if not m.name or not isinstance(m.name, str):
            raise NeurocorrError(f"every grid model needs a name; got {m.name!r} for {describe(m.model)}")
        if m.name in seen:
            raise NeurocorrError(f"the model name {m.name!r} is given twice; give every model its own name "
                                 "(--name)")
        seen.add(m.name)


def grid(models: Sequence[GridModel], probe: str | os.PathLike[str] | np.ndarray | Probe, *,
         config: GridConfig | None = None, pairs: Iterable[tuple[str, str]] | None = None,
         skip: Iterable[tuple[str, str]] = (), executor: str | Executor | None = None,
         executor_options: Mapping[str, Any] | None = None,
         scheduler: str | None = None, workers: int | None = None, shards: int | None = None,
         cache: Any = None, on_pair: Callable[[str, str, Comparison], None] | None = None,
         fingerprints: Mapping[str, str | None] | None = None,
         plugin_manager: PluginManager | None = None) -> GridResult:
    """Compare every pair of ``models`` (default: each unordered pair once, in the given order)
    over ``probe`` and return the score matrix.

    ``pairs``: only these (name, name) pairs; ``skip``: pairs already done (in either order),
    not recomputed and not opened. ``executor``/``executor_options``/``scheduler``/``workers``/
    ``shards``: where (an executor's name and its options, as compare() takes them) and in how many
    probe shards (default: ``local``, 1 shard; a remote executor: one shard per worker).
    ``cache``: an activation cache folder (or True for the default one). ``on_pair(a, b,
    comparison)`` is called in this process as each pair finishes. ``fingerprints``: the
    expected model fingerprints by name (the atlas's), checked before any comparison.
    """
    start = time.perf_counter()
    config = config or GridConfig()
    check_names(models)  # the options were checked when the GridConfig was made
    probe = load_indexed_probe(probe, "a grid")
    if len(probe) < 2:
        raise NeurocorrError(f"probe {probe.name!r} has {len(probe)} sample(s); a correlation needs at "
                             "least 2")
    names = [m.name for m in models]
    todo = _pairs(names, pairs, skip)
    pm = plugin_manager or get_plugin_manager()
    metric_cls = pm.metric(config.metric)
    matcher = pm.matching(config.matching)(**dict(config.matching_options))
    constant = constant_policy(config.constant_neurons, matcher)
    store = open_cache(cache)
    scores = np.full((len(models), len(models)), np.nan)
    result = GridResult(names, scores, {}, [], "local", 1, 0.0)
    if not todo:
        result.seconds = time.perf_counter() - start
        return result
    ex = get_executor(executor, scheduler=scheduler, workers=workers, options=executor_options,
                      plugin_manager=pm)  # fails fast on a bad scheduler
    try:
        needed = {n for pair in todo for n in pair}
        by_name = {m.name: m for m in models}
        sides = {n: _open(by_name[n], probe, config.neurons, pm) for n in names if n in needed}
        _check_fingerprints(sides, fingerprints)
        plans = {pair: _plan(metric_cls, config, matcher, constant, sides[pair[0]][0], sides[pair[1]][0],
                             len(probe)) for pair in todo}
        extractions = {n: Extraction(src, tuple(side.layers), config.neurons, probe)
                       for n, (side, src) in sides.items()}
        jobs = {pair: PairJob(pair[0], pair[1], plan.metric_plan, plan) for pair, plan in plans.items()}
        count = default_shards(ex, shards, len(probe))
        result.executor, result.shards = ex.describe(), count
        run = {**config.to_dict(), "probe": probe.name, "batch_size": config.batch_size,
               "executor": ex.name, "shards": count}
        index = {n: i for i, n in enumerate(names)}
        for pair, outcome in run_pairs(ex, extractions, jobs, shards=count, batch_size=config.batch_size,
                                       cache=store):  # each pair finished where its metrics are
            config_ab = {**run, "layers_a": by_name[pair[0]].layers, "layers_b": by_name[pair[1]].layers}
            comparison = make_comparison(plans[pair], outcome, config=config_ab, versions=pm.versions())
            i, j = index[pair[0]], index[pair[1]]
            scores[i, j], scores[j, i] = comparison.score.a_to_b, comparison.score.b_to_a
            result.comparisons[pair] = comparison
            result.computed.append(pair)
            if on_pair is not None:
                on_pair(pair[0], pair[1], comparison)
    finally:
        if ex is not executor:
            ex.close()
    result.seconds = time.perf_counter() - start
    return result


def _pairs(names: list[str], pairs: Iterable[tuple[str, str]] | None,
           skip: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    done = {frozenset(p) for p in skip}
    if pairs is None:
        chosen = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    else:
        chosen = [tuple(p) for p in pairs]  # type: ignore[misc]
        for a, b in chosen:
            for n in (a, b):
                if n not in names:
                    raise NeurocorrError(f"pair ({a!r}, {b!r}) names {n!r}, which is not among the grid's "
                                         f"models: {', '.join(names)}")
            if a == b:
                raise NeurocorrError(f"pair ({a!r}, {b!r}) compares a model with itself; name two models")
    return [p for p in dict.fromkeys(chosen) if frozenset(p) not in done]


def _open(model: GridModel, probe: Probe, neurons: str, pm: PluginManager) -> tuple[Side, ModelSource]:
    """The model's selected layers (one 2-sample forward pass here) and how tasks open it."""
    options = dict(model.options)
    built = resolve_model(model.model, side=f"model {model.name!r}")
    try:
        provider = open_model(built, provider=model.provider, pm=pm, **options)
    except NeurocorrError as exc:  # e.g. a pickle refused without --trust-pickle: say which model
        raise NeurocorrError(f"model {model.name!r} ({describe(model.model)}): {exc}") from None
    try:
        layers = select_layers(provider.layers(next(probe.head(2).batches(2))), model.layers, model.name)
        fingerprinted = model.fingerprint_options
        if fingerprinted is None:
            fingerprinted = {k: v for k, v in options.items() if k != "trust_pickle"}
        source = model_source(model.model, provider, dict(fingerprinted))
    finally:
        provider.close()
    source.label = model.name
    source.options = options  # the tasks open it as this run was allowed to
    return Side.of(model.name, layers, neurons), source


def _check_fingerprints(sides: Mapping[str, tuple[Side, ModelSource]],
                        expected: Mapping[str, str | None] | None) -> None:
    for name, (_, source) in sides.items():
        want = (expected or {}).get(name)
        if want and source.fingerprint and want != source.fingerprint:
            raise NeurocorrError(
                f"model {name!r} ({source.label if source.label != name else describe(source.spec)}) has "
                "changed "
                "since it was added to the atlas (its fingerprint differs), so its stored comparisons and "
                f"measurements may not describe it; remove and re-add it: neurocorr atlas rm {name}, then "
                "neurocorr atlas add ... with its new measurements")


def _plan(metric_cls: type[Metric], config: GridConfig, matcher: MatchingStrategy, constant: str, a: Side,
          b: Side, samples: int) -> Plan:
    """The plan of one pair: all neurons, no memory budget (so never in tiles)."""
    return build_plan(metric_cls, matcher, a, b, samples=samples, constant=constant, penalty=config.depth_penalty,
                      absolute=config.absolute, options=dict(config.metric_options))

