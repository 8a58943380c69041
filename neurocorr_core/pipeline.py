"""The comparison pipeline that compare() and grid() share once their models are open.

:func:`build_plan` says which metrics to build over which neurons (one :class:`Part` each) and,
after :meth:`Plan.fit`, whether they work in tiles; an :class:`Accumulator` feeds those metrics
every probe batch (here, or on an executor's worker from the :class:`MetricPlan` alone);
:meth:`Plan.finish` turns the fed metrics into an :class:`Outcome` (matching, network score);
:func:`neurocorr_core.assemble.make_comparison` makes the :class:`Comparison` a user reads.
Nothing here opens a model: the providers stay with the caller, which closes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .bands import Band, Banded, CheckedTiles, band_minimum, bands_of, plan_bands
from .checks import call_metric, checked_constant, checked_similarity
from .errors import NeurocorrError
from .interfaces import LayerInfo, MatchingStrategy, Metric
from .matching import MaxMatching, MutualMatching
from .result import Score
from .sampling import Amount, rng_for, sample_neurons, sampled_sizes, stratified_mean
from .score import Directional, full_directions, layer_directions, tiled_directions
from .significance import ScoreFn
from .tiles import TilePlan, human, plan_tiles, reduce_tiles, reducer_bytes, tile_minimum, too_small, untiled_bytes
from .views import neuron_count

#: Without a memory budget, a similarity whose full matrices would take this many bytes
#: (``untiled_bytes``: 2 GB is about 8,000 x 8,000 neurons) is computed in tiles when the
#: activations tiles keep take at most 1/AUTO_TILES_RATIO of that.
AUTO_TILES_BYTES = 2 * 10**9
AUTO_TILES_RATIO = 4


@dataclass
class Side:
    """One model of a comparison: its label, its selected layers and their neuron counts."""

    label: str
    layers: list[LayerInfo]
    sizes: list[int]
    view: str = "channel"

    @classmethod
    def of(cls, label: str, layers: Sequence[LayerInfo], neurons: str) -> Side:
        """The side of ``layers`` seen as ``neurons`` (a view of :data:`~neurocorr_core.views.VIEWS`)."""
        return cls(label, list(layers), [neuron_count(layer.shape, neurons) for layer in layers], neurons)


@dataclass
class Part:
    """One metric of a plan: rows from the neurons of ``side`` ("a" or "b"), columns from the other's.

    Unsampled, one part gives both directions (``both``); with sampled neurons, each direction has
    its own part whose rows are the ``sampled`` neurons of one side (indices among all of that
    side's) and whose columns are all the neurons of the other (the best match is searched among
    all of them).
    """

    side: str
    sizes_r: list[int]
    sizes_c: list[int]
    sampled: np.ndarray | None
    both: bool
    tiles: TilePlan | None = None


@dataclass
class MetricPlan:
    """What builds a pair's metrics, here or on a worker: the metric class, its options, the
    parts and the number of probe samples (a tiled metric sizes its state by it)."""

    metric_cls: type[Metric]
    options: dict[str, Any]
    parts: list[Part]
    samples: int


@dataclass
class Outcome:
    """A finished plan: both directions, the constant neurons of each side, the network score
    (with its standard error when neurons were sampled) and the tiles used, if any."""

    ab: Directional
    ba: Directional
    dead_a: np.ndarray
    dead_b: np.ndarray
    score: Score
    standard_error: dict[str, float] | None
    tiles: dict[str, Any] | None = None


def constant_policy(choice: str | None, matcher: MatchingStrategy) -> str:
    """What a constant neuron does (``zero`` or ``error``): ``choice``, else the matching's own."""
    policy = choice or matcher.constant_neurons
    if policy not in ("zero", "error"):
        raise NeurocorrError(f"constant_neurons must be 'zero' or 'error', got {choice!r}")
    return policy


def metric_options(metric_cls: type[Metric], options: dict[str, Any] | None,
                   budget: int | None) -> dict[str, Any]:
    """The user's options; the memory budget too, for a metric that takes it
    (:attr:`Metric.takes_memory_budget`: e.g. spearman spills to disk beyond it)."""
    options = dict(options or {})
    if budget is not None and metric_cls.takes_memory_budget:
        options.setdefault("memory_budget", budget)
    return options


def build_plan(metric_cls: type[Metric], matcher: MatchingStrategy, a: Side, b: Side, *, samples: int,
               constant: str, penalty: str, absolute: bool, options: dict[str, Any] | None = None,
               budget: int | None = None, sample: Amount = None, seed: int = 0) -> Plan:
    """The plan of comparing ``a`` with ``b`` over ``samples`` probe samples: ``constant`` from
    :func:`constant_policy`, the metric's ``options`` (and ``budget``, for a metric that takes
    it), ``sample``: neurons per layer to sample (None: all of them), drawn with ``seed``."""
    plan = Plan(MetricPlan(metric_cls, metric_options(metric_cls, options, budget), [], samples), matcher,
                a, b, penalty, absolute, constant)
    if sample is None:
        plan.metric_plan.parts = [Part("a", a.sizes, b.sizes, None, True)]
        return plan
    plan.sampled_a = sample_neurons(a.sizes, sample, rng_for(seed, 0))
    plan.sampled_b = sample_neurons(b.sizes, sample, rng_for(seed, 1))
    plan.metric_plan.parts = [Part("a", sampled_sizes(a.sizes, plan.sampled_a), b.sizes, plan.sampled_a, False),
                              Part("b", sampled_sizes(b.sizes, plan.sampled_b), a.sizes, plan.sampled_b, False)]
    return plan


@dataclass
class Plan:
    """A comparison of two sides, from the metrics to the network score (:func:`build_plan`).
    ``sampled_a``/``sampled_b``: the sampled neurons of each side (None: all)."""

    metric_plan: MetricPlan
    matcher: MatchingStrategy
    a: Side
    b: Side
    penalty: str
    absolute: bool
    constant: str
    sampled_a: np.ndarray | None = None
    sampled_b: np.ndarray | None = None

    @property
    def metric_cls(self) -> type[Metric]:
        return self.metric_plan.metric_cls

    @property
    def parts(self) -> list[Part]:
        return self.metric_plan.parts

    @property
    def samples(self) -> int:
        return self.metric_plan.samples

    def fit(self, budget: int | None, keep: bool) -> None:
        """Decide, before any forward pass, whether the full matrices fit ``budget`` (``keep``:
        the activations are kept too, for significance); if not, plan tiles (or say why that is
        impossible). Without a budget, tiles are chosen when they are exact and far leaner than
        the full matrices (:meth:`_auto_budget`)."""
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
        if least > budget:  # tiles would keep too many rows: run the probe once per band of rows
            k = self.matcher.candidates
            fixed = sum(reducer_bytes(p.sizes_r, p.sizes_c, k, p.both) for p in self.parts)
            lows = max(band_minimum(p.sizes_r, p.sizes_c, k, fixed) for p in self.parts)
            if not keep and lows <= budget:
                for part in self.parts:
                    part.tiles = plan_bands(part.sizes_r, part.sizes_c, k=k, fixed=fixed, budget=budget)
                return
            what = f"comparing {shape} neurons over {self.samples} samples"  # the least of the three
            least = min(least, lows) if not keep else least
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
        # tiles keep every row: under the token view, a token each, often far more than samples
        if keep or not exact or not self.metric_cls.tiles or self.a.view == "token":
            return None
        full = sum(untiled_bytes(sum(p.sizes_r), sum(p.sizes_c)) for p in self.parts)
        kept = sum(self.metric_cls.tiled_state_bytes(p.sizes_r, p.sizes_c, self.samples) for p in self.parts)
        if full < AUTO_TILES_BYTES or AUTO_TILES_RATIO * kept > full:
            return None
        budget = full // AUTO_TILES_RATIO
        least = max(tile_minimum(p.sizes_r, p.sizes_c, k=1, samples=self.samples, fixed=kept, columns=p.both)
                    for p in self.parts)
        return budget if least <= budget else None

    def passes(self) -> list[Band | None]:
        """The passes over the probe: one that feeds every part, or one per band (:mod:`~neurocorr_core.bands`)."""
        return [band for i, p in enumerate(self.parts) if p.tiles and p.tiles.bands
                for band in bands_of(p.sizes_r, p.tiles, i)] or [None]

    def accumulator(self, band: Band | None = None) -> Accumulator:
        return Accumulator(self.metric_plan, band)

    def absorb(self, band: Band | None, fed: list[Metric], done: list[Any]) -> list[Any]:
        """The metrics :meth:`finish` reads: ``fed`` after one pass; over bands, ``done`` with ``band`` reduced in."""
        if band is None:
            return fed
        done = done or [Banded(p.sizes_r, p.sizes_c, p.tiles, self.matcher.candidates, p.both)
                        for p in self.parts if p.tiles]  # fit() bands every part or none
        done[band.part].add(band, fed[0], self.absolute, len(self.passes()))
        return done

    def finish(self, metrics: Sequence[Metric], tables: bool = True, constant: str | None = None) -> Outcome:
        """The outcome of the plan's ``metrics`` once fed (an :class:`Accumulator`'s, or merged
        over shards); ``constant`` overrides the plan's policy for constant neurons."""
        if self.a.view == "token" and metrics and metrics[0].count:
            self.metric_plan.samples = metrics[0].count  # the tokens seen: what the user reads as samples
        if self.metric_cls.level != "neuron":
            return self._finish_layers(metrics[0])
        results, dead = {}, {}
        tiles: dict[str, Any] = {}
        masks = [checked_constant(metric, part.sizes_r, part.sizes_c)
                 for part, metric in zip(self.parts, metrics, strict=True)]
        for part, (dead_r, dead_c) in zip(self.parts, masks, strict=True):
            dead["b" if part.side == "a" else "a"] = dead_c
            if part.both:
                dead[part.side] = dead_r
        if (constant or self.constant) == "error":
            self._check_constant(dead["a"], dead["b"])
        for part, metric, (dead_r, dead_c) in zip(self.parts, metrics, masks, strict=True):
            if part.tiles is None:
                sim = checked_similarity(metric, call_metric(metric, "compute", metric.compute), part.sizes_r,
                                         part.sizes_c, dead_r, dead_c)
                rows, cols = full_directions(sim, part.sizes_r, part.sizes_c, self.matcher,
                                             self.penalty, self.absolute, part.both, tables, overwrite=True)
            else:  # tiles walked here, or bands reduced as they came (Banded)
                best, count = (metric.best, metric.tiles) if isinstance(metric, Banded) else reduce_tiles(
                    CheckedTiles(metric, dead_r, dead_c), part.sizes_r, part.sizes_c, part.tiles,
                    k=self.matcher.candidates, absolute=self.absolute, dead_r=dead_r, dead_c=dead_c,
                    columns=part.both)
                rows, cols = tiled_directions(best, self.matcher, self.penalty, part.both, tables)
                tiles[part.side] = {**part.tiles.to_dict(), "count": count}
            results[part.side] = rows
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
        if self.sampled_a is None or self.sampled_b is None:
            return Outcome(ab, ba, dead_a, dead_b, Score(ab.score, ba.score), None, tiles)
        est_ab = stratified_mean(ab.value, self.a.sizes, sampled_sizes(self.a.sizes, self.sampled_a))
        est_ba = stratified_mean(ba.value, self.b.sizes, sampled_sizes(self.b.sizes, self.sampled_b))
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

    def scorer(self, batch_size: int) -> ScoreFn:
        """``score(x, y)``: the symmetric network score of stored activations, recomputed from
        fresh metrics (for the permutation null and the bootstrap)."""
        def score(x: np.ndarray, y: np.ndarray) -> float:
            acc = self.accumulator()
            for start in range(0, len(x), batch_size):
                acc.update(x[start:start + batch_size], y[start:start + batch_size])
            # a resample may make a neuron constant: score it 0 rather than stop
            return self.finish(acc.metrics, tables=False, constant="zero").score.symmetric
        return score


class Accumulator:
    """A plan's metrics, fed every batch (a sampled part: only its sampled rows); with a ``band``,
    only that part's metric over the band's rows, streamed (not tiled)."""

    def __init__(self, plan: MetricPlan, band: Band | None = None) -> None:
        self.plan, self.band = plan, band
        self.parts = plan.parts if band is None else [plan.parts[band.part]]
        tiled = {"tiled": True, "samples": plan.samples}
        self.metrics: list[Metric] = [
            call_metric(plan.metric_cls, "__init__", plan.metric_cls, p.sizes_r if band is None else band.sizes,
                        p.sizes_c, **plan.options, **(tiled if p.tiles and band is None else {}))
            for p in self.parts]

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        """One batch: ``x`` A's neurons (batch, sum(a.sizes)), ``y`` B's."""
        for part, metric in zip(self.parts, self.metrics, strict=True):
            rows, cols = (x, y) if part.side == "a" else (y, x)
            if part.sampled is not None:
                rows = np.ascontiguousarray(rows[:, part.sampled])
            if self.band is not None:
                rows = rows[:, self.band.start:self.band.stop]
            call_metric(metric, "update", metric.update, rows, cols)


def _dead_names(side: Side, dead: np.ndarray, limit: int = 8) -> str:
    bounds = np.cumsum([0, *side.sizes])
    parts = []
    for i, layer in enumerate(side.layers):
        idx = np.flatnonzero(dead[bounds[i]:bounds[i + 1]])
        if len(idx):
            shown = ", ".join(str(int(k)) for k in idx[:limit]) + (", ..." if len(idx) > limit else "")
            parts.append(f"layer {layer.name!r} neurons [{shown}] ({len(idx)} of {side.sizes[i]})")
    return ", ".join(parts)
