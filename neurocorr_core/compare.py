"""compare(): probe -> providers -> neuron views -> metric -> matching -> aggregation."""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from .checks import call_metric, checked_constant, checked_similarity, checked_tile
from .errors import NeurocorrError
from .executor import check_sharding, sharded_accumulator
from .interfaces import ActivationProvider, LayerInfo, MatchingStrategy, Metric
from .matching import MaxMatching, MutualMatching
from .models import describe, resolve_model
from .plugins import PluginManager, get_plugin_manager
from .probe import Probe, check_batch_size, load_probe
from .result import Comparison, LayerResult, Score
from .sampling import Amount, check_amount, rng_for, sample_indices, sample_neurons, sampled_sizes, stratified_mean
from .score import Directional, check_penalty, full_directions, layer_directions, tiled_directions
from .selection import Selector, select_layers
from .significance import assess, check_options
from .tiles import TilePlan, human, parse_budget, plan_tiles, reduce_tiles, tile_minimum, too_small, untiled_bytes
from .views import check_view, neuron_batches, neuron_count


@dataclass
class Side:
    """One model of a comparison, loaded, with its selected layers."""

    label: str
    provider: ActivationProvider
    layers: list[LayerInfo]
    sizes: list[int]


def open_model(model: object, *, provider: str | None = None, pm: PluginManager | None = None,
               side: str = "model", **options: Any) -> ActivationProvider:
    """Load ``model`` (object, path or ``module:callable``) with the provider that handles it;
    ``side`` names it in messages ("model A")."""
    pm = pm or get_plugin_manager()
    obj = resolve_model(model, side=side)
    if isinstance(obj, (str, os.PathLike)) and not os.path.exists(obj):
        raise NeurocorrError(f"model file {os.fspath(obj)!r} does not exist; give a path, "
                             "or a 'module:callable' reference that builds the model")
    cls = pm.provider(provider) if provider else pm.provider_for(obj)
    return cls(obj, **options)


def compare(
    model_a: object,
    model_b: object,
    probe: str | os.PathLike[str] | np.ndarray | Probe,
    *,
    metric: str = "pearson",
    matching: str = "max",
    neurons: str = "channel",
    layers_a: Selector = None,
    layers_b: Selector = None,
    depth_penalty: str = "paper",
    absolute: bool = True,
    batch_size: int = 256,
    provider_a: str | None = None,
    provider_b: str | None = None,
    options_a: dict[str, Any] | None = None,
    options_b: dict[str, Any] | None = None,
    probe_b: str | os.PathLike[str] | np.ndarray | Probe | None = None,
    sample_neurons: Amount = None,
    sample_probe: Amount = None,
    seed: int = 0,
    permutations: int = 0,
    bootstrap: int = 0,
    confidence: float = 0.95,
    memory_budget: int | str | None = None,
    constant_neurons: str | None = None,
    metric_options: dict[str, Any] | None = None,
    matching_options: dict[str, Any] | None = None,
    progress: bool = False,
    executor: str | Any | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    shards: int | None = None,
    cache: Any = None,
    plugin_manager: PluginManager | None = None,
) -> Comparison:
    """Compare two networks by their neurons' outputs over the same probe.

    ``probe``: an array (NCHW images or (N, features)), a ``.npy``/IDX path or a built-in
    name (``digits``, ``fashion-mnist``). ``neurons``: ``channel`` (spatial mean per
    channel) or ``position`` (every C x H x W element). ``layers_a``/``layers_b``: globs or
    ``kind:KIND`` (default: every activation layer). ``matching``: ``max`` (the paper),
    ``mutual`` or ``hungarian`` (docs/matching.md). ``depth_penalty``: ``paper`` divides
    by ``|d(i) - d(j)| + 1``, ``none`` does not. ``absolute``: match on |r| (the paper) or
    signed r. ``probe_b``: the same samples prepared for model B (another resolution or
    normalisation), same length and order; default: ``probe``.

    Large networks (docs/significance.md, docs/matching.md): ``sample_neurons`` (a fraction
    in (0, 1] or a count per layer) estimates the ``max`` score from sampled neurons of each
    side, with its standard error; ``sample_probe`` uses a seeded subset of the probe;
    ``memory_budget`` (bytes or ``"4GB"``) computes the similarity in tiles when the full
    matrix does not fit. Significance: ``permutations`` (permutation null: z, p-value)
    and ``bootstrap`` (interval at ``confidence``). ``seed`` drives every random choice.
    ``constant_neurons``: ``zero`` (score 0) or ``error``; default: the matching's own
    (``hungarian``: error). ``metric_options``/``matching_options``: keyword options of the
    metric and matching classes (e.g. ``{"top_k": 32}`` for tiled ``hungarian``).
    Scale out (docs/scale-out.md): ``executor`` (``local`` or ``dask``, with ``scheduler`` an
    address or ``workers`` for a local cluster) and ``shards`` split the probe into shards whose
    statistics merge exactly; ``cache`` (a folder, or True) reuses activations from disk.
    Returns a :class:`Comparison` with the network score in both directions.
    """
    pm = plugin_manager or get_plugin_manager()
    check_view(neurons)
    check_penalty(depth_penalty)
    check_options(permutations, bootstrap, confidence)
    batch_size = check_batch_size(batch_size)
    sample_neurons = check_amount(sample_neurons, "sample_neurons")
    sample_probe = check_amount(sample_probe, "sample_probe")
    budget = parse_budget(memory_budget)
    sharded = check_sharding(executor, scheduler, workers, shards, cache, bool(permutations or bootstrap))
    probe, second = _probes(probe, probe_b, sample_probe, seed)
    metric_cls = pm.metric(metric)
    matcher = pm.matching(matching)(**(matching_options or {}))
    constant = _constant_policy(constant_neurons, matcher)
    _check_combination(metric_cls, matcher, sample_neurons)
    a = _side(model_a, provider_a, options_a, layers_a, probe, neurons, pm, "model A")
    try:
        b = _side(model_b, provider_b, options_b, layers_b, second, neurons, pm, "model B")
    except BaseException:
        a.provider.close()
        raise
    keep = bool(permutations or bootstrap)
    try:
        plan = Plan(metric_cls, _metric_options(metric_cls, metric_options, budget), matcher, a, b,
                    depth_penalty, absolute, constant, len(probe))
        plan.sample(sample_neurons, seed)
        plan.fit(budget, keep)
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        if sharded:  # the same plan, shard by shard on an executor
            acc, ran = sharded_accumulator(plan, ((model_a, options_a), (model_b, options_b)),
                                           (probe, second), neurons, batch_size, executor=executor,
                                           scheduler=scheduler, workers=workers, shards=shards, cache=cache)
        else:
            acc = plan.accumulator()
            for x, y in _progress(_stream(a, b, probe, second, neurons, batch_size), progress,
                                  -(-len(probe) // batch_size)):
                acc.update(x, y)
                if keep:
                    xs.append(x)
                    ys.append(y)
    finally:
        a.provider.close()
        b.provider.close()
    outcome = plan.finish(acc)
    del acc
    significance = None
    if keep:
        x_all, y_all = np.concatenate(xs), np.concatenate(ys)
        xs.clear()
        ys.clear()
        significance = assess(outcome.score.symmetric, plan.scorer(batch_size), x_all, y_all,
                              permutations=permutations, bootstrap=bootstrap, confidence=confidence,
                              seed=seed)
    config = {"metric": metric, "matching": matching, "neurons": neurons,
              "layers_a": layers_a, "layers_b": layers_b, "depth_penalty": depth_penalty,
              "absolute": absolute, "batch_size": batch_size, "probe": probe.name,
              "probe_b": second.name,
              "provider_a": a.provider.name, "provider_b": b.provider.name,
              "constant_neurons": constant, "metric_options": metric_options or {},
              "matching_options": matching_options or {},
              "memory_budget": budget, "tiles": outcome.tiles,
              "sampling": {"seed": seed, "neurons": sample_neurons, "probe": sample_probe,
                           "probe_samples": len(probe),
                           "sampled_a": None if plan.rows_a is None else len(plan.rows_a),
                           "sampled_b": None if plan.rows_b is None else len(plan.rows_b)},
              "significance": {"permutations": permutations, "bootstrap": bootstrap,
                               "confidence": confidence}}
    if sharded:
        config["executor"] = ran
    return _result(plan, outcome, len(probe), config, significance, pm)


# -- setup ------------------------------------------------------------------------------------
def _probes(probe: Any, probe_b: Any, amount: Amount, seed: int) -> tuple[Probe, Probe]:
    first = load_probe(probe)
    second = first if probe_b is None else load_probe(probe_b)
    if len(second) != len(first):
        raise NeurocorrError(f"the probes differ in length: {len(first)} samples for A, {len(second)} "
                             "for B; probe_b must hold the same samples as probe, in the same order")
    if amount is not None:
        idx = sample_indices(len(first), amount, rng_for(seed, 2))
        first = _subset(first, idx, seed)
        second = first if probe_b is None else _subset(second, idx, seed)
    if len(first) < 2:
        raise NeurocorrError(f"probe {first.name!r} has {len(first)} sample(s); a correlation "
                             "needs at least 2 (the paper uses 10 or more)")
    return first, second


def _subset(probe: Probe, idx: np.ndarray, seed: int) -> Probe:
    labels = None if probe.labels is None else probe.labels[idx]
    return Probe(np.asarray(probe.data[idx]), f"{probe.name}[{len(idx)} of {len(probe)}, seed {seed}]",
                 labels)


def _constant_policy(choice: str | None, matcher: MatchingStrategy) -> str:
    policy = choice or matcher.constant_neurons
    if policy not in ("zero", "error"):
        raise NeurocorrError(f"constant_neurons must be 'zero' or 'error', got {choice!r}")
    return policy


def _check_combination(metric_cls: type[Metric], matcher: MatchingStrategy, amount: Amount) -> None:
    if amount is None:
        return
    if metric_cls.level != "neuron":
        raise NeurocorrError(f"sample_neurons needs a neuron-level metric; {metric_cls.name!r} compares "
                             "whole layers. Select fewer layers instead, or sample the probe (sample_probe)")
    if matcher.name != "max":
        raise NeurocorrError(f"sample_neurons estimates the mean best match ('max'); matching "
                             f"{matcher.name!r} pairs depend on every neuron of both models. Use "
                             "matching='max', or compare all neurons (with memory_budget for tiles)")


def _metric_options(metric_cls: type[Metric], options: dict[str, Any] | None,
                    budget: int | None) -> dict[str, Any]:
    """The user's options; the memory budget too, for a metric that declares the keyword
    ``memory_budget`` (e.g. spearman spills to disk beyond it)."""
    options = dict(options or {})
    if budget is not None and "memory_budget" not in options:
        try:
            accepts = "memory_budget" in inspect.signature(metric_cls).parameters
        except (TypeError, ValueError):
            accepts = False
        if accepts:
            options["memory_budget"] = budget
    return options


def _side(model: object, provider: str | None, options: dict[str, Any] | None,
          selector: Selector, probe: Probe, view: str, pm: PluginManager, side: str = "model") -> Side:
    prov = open_model(model, provider=provider, pm=pm, side=side, **(options or {}))
    label = describe(model)
    layers = select_layers(prov.layers(next(probe.head(2).batches(2))), selector, label)
    return Side(label, prov, layers, [neuron_count(layer.shape, view) for layer in layers])


# -- the plan: metrics, sampled rows, tiles ----------------------------------------------------
#: Without a memory budget, a similarity whose full matrices would take this many bytes
#: (``untiled_bytes``: 2 GB is about 8,000 x 8,000 neurons) is computed in tiles when the
#: activations tiles keep take at most 1/AUTO_TILES_RATIO of that.
AUTO_TILES_BYTES = 2 * 10**9
AUTO_TILES_RATIO = 4


@dataclass
class Part:
    """One metric of the plan: rows from side ``rows`` ("a" or "b"), columns from the other.

    Unsampled, one part gives both directions; with sampled neurons, each direction has its
    own part whose rows are the sampled neurons of one side and whose columns are all the
    neurons of the other (the best match is searched among all of them).
    """

    rows: str
    sizes_r: list[int]
    sizes_c: list[int]
    pick_r: np.ndarray | None
    both: bool
    tiles: TilePlan | None = None


@dataclass
class Outcome:
    ab: Directional
    ba: Directional
    dead_a: np.ndarray
    dead_b: np.ndarray
    score: Score
    standard_error: dict[str, float] | None
    tiles: dict[str, Any] | None = None


@dataclass
class Plan:
    metric_cls: type[Metric]
    metric_options: dict[str, Any]
    matcher: MatchingStrategy
    a: Side
    b: Side
    penalty: str
    absolute: bool
    constant: str
    samples: int
    rows_a: np.ndarray | None = None
    rows_b: np.ndarray | None = None
    parts: list[Part] = field(default_factory=list)

    def sample(self, amount: Amount, seed: int) -> None:
        if amount is None:
            self.parts = [Part("a", self.a.sizes, self.b.sizes, None, True)]
            return
        self.rows_a = sample_neurons(self.a.sizes, amount, rng_for(seed, 0))
        self.rows_b = sample_neurons(self.b.sizes, amount, rng_for(seed, 1))
        self.parts = [Part("a", sampled_sizes(self.a.sizes, self.rows_a), self.b.sizes, self.rows_a, False),
                      Part("b", sampled_sizes(self.b.sizes, self.rows_b), self.a.sizes, self.rows_b, False)]

    def fit(self, budget: int | None, keep: bool) -> None:
        """Decide, before any forward pass, whether the full matrices fit ``budget``; if not,
        plan tiles (or say why that is impossible). Without a budget, tiles are chosen when
        they are exact and far leaner than the full matrices (:meth:`_auto_budget`)."""
        if self.metric_cls.level != "neuron":
            return
        if budget is None:
            budget = self._auto_budget(keep)
            if budget is None:
                return
        stored = 4 * self.samples * (sum(self.a.sizes) + sum(self.b.sizes)) if keep else 0
        full = stored + sum(untiled_bytes(sum(p.sizes_r), sum(p.sizes_c)) for p in self.parts)
        if full <= budget:
            return
        shape = " + ".join(f"{sum(p.sizes_r)} x {sum(p.sizes_c)}" for p in self.parts)
        fixes = ("raise memory_budget (--memory-budget), sample neurons (sample_neurons=0.1) or "
                 "select fewer layers")
        if not self.metric_cls.tiles:
            raise NeurocorrError(f"the {shape} similarity needs about {human(full)}, more than the memory "
                                 f"budget {human(budget)}, and metric {self.metric_cls.name!r} cannot work "
                                 f"in tiles; {fixes}, or use metric='pearson'")
        if self.matcher.candidates < 1:
            raise NeurocorrError(f"the {shape} similarity needs about {human(full)}, more than the memory "
                                 f"budget {human(budget)}, and matching {self.matcher.name!r} needs the "
                                 f"full matrix; {fixes}, or use max, mutual or hungarian")
        fixed = stored + sum(self.metric_cls.tiled_state_bytes(p.sizes_r, p.sizes_c, self.samples)
                             for p in self.parts)
        least = max(tile_minimum(p.sizes_r, p.sizes_c, k=self.matcher.candidates, samples=self.samples,
                                 fixed=fixed, columns=p.both) for p in self.parts)
        if least > budget:  # say the smaller of what tiles and the full matrix need
            what = f"comparing {shape} neurons over {self.samples} samples"
            raise too_small(budget, min(least, full), what + (" in tiles" if least < full else ""))
        for part in self.parts:
            part.tiles = plan_tiles(part.sizes_r, part.sizes_c, k=self.matcher.candidates,
                                    samples=self.samples, fixed=fixed, budget=budget, columns=part.both)

    def _auto_budget(self, keep: bool) -> int | None:
        """A budget that makes tiles of a large similarity over few samples, or None.

        The full path holds float64 n x m matrices (state, similarity) and passes over them
        several times: with few samples per pair (EfficientNet's 19,200 x 19,200 channels over
        1,024 images) those passes and page faults cost more than the GEMM itself. Tiles keep
        the activations instead, and give the same matches for ``max`` and ``mutual``."""
        exact = isinstance(self.matcher, (MaxMatching, MutualMatching)) and self.matcher.candidates == 1
        if keep or not exact or not self.metric_cls.tiles:
            return None
        full = sum(untiled_bytes(sum(p.sizes_r), sum(p.sizes_c)) for p in self.parts)
        kept = sum(self.metric_cls.tiled_state_bytes(p.sizes_r, p.sizes_c, self.samples) for p in self.parts)
        if full < AUTO_TILES_BYTES or AUTO_TILES_RATIO * kept > full:
            return None
        budget = full // AUTO_TILES_RATIO
        least = max(tile_minimum(p.sizes_r, p.sizes_c, k=1, samples=self.samples, fixed=kept, columns=p.both)
                    for p in self.parts)
        return budget if least <= budget else None

    def accumulator(self) -> Accumulator:
        return Accumulator(self)

    def finish(self, acc: Accumulator, tables: bool = True, constant: str | None = None) -> Outcome:
        if self.metric_cls.level != "neuron":
            return self._finish_layers(acc.metrics[0])
        results, dead = {}, {}
        tiles: dict[str, Any] = {}
        masks = [checked_constant(metric, part.sizes_r, part.sizes_c)
                 for part, metric in zip(self.parts, acc.metrics, strict=True)]
        for part, (dead_r, dead_c) in zip(self.parts, masks, strict=True):
            dead["b" if part.rows == "a" else "a"] = dead_c
            if part.both:
                dead[part.rows] = dead_r
        if (constant or self.constant) == "error":
            self._check_constant(dead["a"], dead["b"])
        for part, metric, (dead_r, dead_c) in zip(self.parts, acc.metrics, masks, strict=True):
            if part.tiles is None:
                sim = checked_similarity(metric, call_metric(metric, "compute", metric.compute), part.sizes_r,
                                         part.sizes_c, dead_r, dead_c)
                rows, cols = full_directions(sim, part.sizes_r, part.sizes_c, self.matcher,
                                             self.penalty, self.absolute, part.both, tables, overwrite=True)
            else:
                checked = cast(Metric, _CheckedTiles(metric, dead_r, dead_c))
                best, count = reduce_tiles(checked, part.sizes_r, part.sizes_c, part.tiles,
                                           k=self.matcher.candidates, absolute=self.absolute,
                                           dead_r=dead_r, dead_c=dead_c, columns=part.both)
                rows, cols = tiled_directions(best, self.matcher, self.penalty, part.both, tables)
                tiles[part.rows] = {**part.tiles.to_dict(), "count": count}
            results[part.rows] = rows
            if cols is not None:
                results["b"] = cols
        return self._outcome(results["a"], results["b"], dead["a"], dead["b"], tiles or None)

    def _finish_layers(self, metric: Metric) -> Outcome:
        dead_a, dead_b = checked_constant(metric, self.a.sizes, self.b.sizes)
        table = checked_similarity(metric, call_metric(metric, "compute", metric.compute), self.a.sizes,
                                   self.b.sizes, dead_a, dead_b).astype(np.float64)
        ab, ba = layer_directions(table, self.matcher, self.penalty, self.absolute)
        return self._outcome(ab, ba, dead_a, dead_b, None)

    def _outcome(self, ab: Directional, ba: Directional, dead_a: np.ndarray, dead_b: np.ndarray,
                 tiles: dict[str, Any] | None) -> Outcome:
        if self.rows_a is None or self.rows_b is None:
            return Outcome(ab, ba, dead_a, dead_b, Score(ab.score, ba.score), None, tiles)
        est_ab = stratified_mean(ab.value, self.a.sizes, sampled_sizes(self.a.sizes, self.rows_a))
        est_ba = stratified_mean(ba.value, self.b.sizes, sampled_sizes(self.b.sizes, self.rows_b))
        se = {"a_to_b": est_ab.standard_error, "b_to_a": est_ba.standard_error,
              # the two neuron samples are drawn independently, so their errors add in quadrature
              "symmetric": 0.5 * float(np.hypot(est_ab.standard_error, est_ba.standard_error))}
        return Outcome(ab, ba, dead_a, dead_b, Score(est_ab.value, est_ba.value), se, tiles)

    def _check_constant(self, dead_a: np.ndarray, dead_b: np.ndarray) -> None:
        if not dead_a.any() and not dead_b.any():
            return
        named = "; ".join(f"{tag}: {_dead_names(side, dead)}"
                          for tag, side, dead in (("A", self.a, dead_a), ("B", self.b, dead_b)) if dead.any())
        raise NeurocorrError(
            f"matching {self.matcher.name!r} needs a defined similarity for every pair of neurons, but "
            f"{int(dead_a.sum() + dead_b.sum())} neuron(s) are constant over the probe, so their "
            f"correlation is undefined (NaN): {named}. Leave those layers out (layers_a/layers_b), use a "
            "probe on which they vary, or pass constant_neurons='zero' (--constant-neurons zero) to score "
            "them 0 as the seed paper does")

    def scorer(self, batch_size: int) -> Any:
        """``score(x, y)``: the symmetric network score of stored activations, recomputed from
        a fresh metric (for the permutation null and the bootstrap)."""
        def score(x: np.ndarray, y: np.ndarray) -> float:
            acc = self.accumulator()
            for start in range(0, len(x), batch_size):
                acc.update(x[start:start + batch_size], y[start:start + batch_size])
            # a resample may make a neuron constant: score it 0 rather than stop
            return self.finish(acc, tables=False, constant="zero").score.symmetric
        return score


class Accumulator:
    """The plan's metrics, fed every batch (the sampled columns for a sampled part)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        tiled = {"tiled": True, "samples": plan.samples}
        self.metrics = [call_metric(plan.metric_cls, "__init__", plan.metric_cls, p.sizes_r, p.sizes_c,
                                    **plan.metric_options, **(tiled if p.tiles else {}))
                        for p in plan.parts]

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        for part, metric in zip(self.plan.parts, self.metrics, strict=True):
            rows, cols = (x, y) if part.rows == "a" else (y, x)
            if part.pick_r is not None:
                rows = np.ascontiguousarray(rows[:, part.pick_r])
            call_metric(metric, "update", metric.update, rows, cols)


class _CheckedTiles:
    """A tiled metric whose tiles are checked against the Metric contract as they come."""

    def __init__(self, metric: Metric, dead_r: np.ndarray, dead_c: np.ndarray) -> None:
        self.metric, self.dead_r, self.dead_c = metric, dead_r, dead_c

    def tile(self, rows: slice, cols: slice) -> np.ndarray:
        values = call_metric(self.metric, "tile", self.metric.tile, rows, cols)
        return checked_tile(self.metric, values, rows, cols, self.dead_r[rows], self.dead_c[cols])


def _dead_names(side: Side, dead: np.ndarray, limit: int = 8) -> str:
    bounds = np.cumsum([0, *side.sizes])
    parts = []
    for i, layer in enumerate(side.layers):
        idx = np.flatnonzero(dead[bounds[i]:bounds[i + 1]])
        if len(idx):
            shown = ", ".join(str(int(k)) for k in idx[:limit]) + (", ..." if len(idx) > limit else "")
            parts.append(f"layer {layer.name!r} neurons [{shown}] ({len(idx)} of {side.sizes[i]})")
    return ", ".join(parts)


# -- streaming ---------------------------------------------------------------------------------
def _stream(a: Side, b: Side, probe_a: Probe, probe_b: Probe, view: str,
            batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    outs_a = neuron_batches(a.provider, probe_a.batches(batch_size), [la.name for la in a.layers], view, a.label)
    outs_b = neuron_batches(b.provider, probe_b.batches(batch_size), [lb.name for lb in b.layers], view, b.label)
    for out_a, out_b in zip(outs_a, outs_b, strict=True):
        yield np.concatenate(list(out_a.values()), axis=1), np.concatenate(list(out_b.values()), axis=1)


# -- the result ---------------------------------------------------------------------------------
def _result(plan: Plan, out: Outcome, samples: int, config: dict[str, Any], significance: Any,
            pm: PluginManager) -> Comparison:
    layer_level = plan.metric_cls.level != "neuron"
    partner_a, value_a = _expand(out.ab, plan.rows_a, sum(plan.a.sizes))
    partner_b, value_b = _expand(out.ba, plan.rows_b, sum(plan.b.sizes))
    return Comparison(
        model_a=plan.a.label, model_b=plan.b.label, samples=samples,
        score=out.score,
        layers_a=_layer_results(plan.a, out.dead_a, value_a, plan.rows_a, layer_level),
        layers_b=_layer_results(plan.b, out.dead_b, value_b, plan.rows_b, layer_level),
        layer_table=out.ab.table, layer_table_ba=out.ba.table,
        partner_a=partner_a, partner_b=partner_b, value_a=value_a, value_b=value_b,
        config=config, versions=pm.versions(),
        matched_fraction={"a_to_b": _matched(out.ab.partner), "b_to_a": _matched(out.ba.partner)},
        standard_error=out.standard_error, significance=significance,
    )


def _expand(direction: Directional, rows: np.ndarray | None, total: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron partner and value over all neurons: -1 and NaN for neurons not sampled."""
    if rows is None:
        return direction.partner, direction.value
    partner, value = np.full(total, -1, dtype=np.int64), np.full(total, np.nan)
    partner[rows], value[rows] = direction.partner, direction.value
    return partner, value


def _matched(partner: np.ndarray) -> float:
    return float(np.mean(partner >= 0)) if len(partner) else 0.0


def _layer_results(side: Side, dead: np.ndarray, values: np.ndarray, rows: np.ndarray | None,
                   layer_level: bool) -> list[LayerResult]:
    bounds = np.cumsum([0, *side.sizes])
    counts = None if rows is None else sampled_sizes(side.sizes, rows)
    if len(dead) != bounds[-1]:  # a layer-level metric that reports no neuron masks
        dead = np.zeros(int(bounds[-1]), dtype=bool)
    out = []
    for i, layer in enumerate(side.layers):
        if layer_level:
            score = float(values[i])
        else:
            part = values[bounds[i]:bounds[i + 1]]
            score = float(np.nanmean(part)) if np.isfinite(part).any() else float("nan")
        out.append(LayerResult(layer, i, side.sizes[i], int(dead[bounds[i]:bounds[i + 1]].sum()), score,
                               None if counts is None else counts[i]))
    return out


def _progress(items: Iterator[Any], enabled: bool, total: int) -> Iterator[Any]:
    if not enabled or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return iter(tqdm(items, total=total, desc="probe batches", unit="batch", leave=False))
