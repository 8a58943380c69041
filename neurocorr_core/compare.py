"""compare(): probe -> providers -> neuron views -> metric -> matching -> aggregation."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from .assemble import make_comparison
from .backend import single_thread
from .errors import NeurocorrError
from .gather import OVERLAP_CHUNK, short_chunks
from .interfaces import ActivationProvider, MatchingStrategy, Metric
from .models import describe, resolve_model
from .options import Options
from .overlap import overlapped
from .pipeline import Plan, Side, build_plan, constant_policy
from .plugins import PluginManager, get_plugin_manager
from .probe import ACCEPTED, AnyProbe, Probe, StreamProbe
from .probe_sources import load_probe
from .result import Comparison
from .sampling import Amount, rng_for, sample_indices
from .scale_out import check_sharding, get_executor, shard_bounds
from .selection import Selector, select_layers
from .sharding import ShardedModel, ShardedRun
from .significance import assess
from .tiles import human
from .views import neuron_batches


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
    probe: object = None,
    options: Options | None = None,
    *,
    provider_a: str | None = None,
    provider_b: str | None = None,
    options_a: dict[str, Any] | None = None,
    options_b: dict[str, Any] | None = None,
    probe_b: object = None,
    plugin_manager: PluginManager | None = None,
    **keywords: Any,
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
    Scale out (docs/scale-out.md): ``executor`` (an executor's name: ``local``, or a plugin's such
    as ``dask``; or a started executor) with ``executor_options`` (its constructor's keywords;
    ``scheduler``/``workers`` are short for the ``dask`` executor's) and ``shards`` split the
    probe into shards whose statistics merge exactly; ``cache`` (a folder, or True) reuses activations from disk.
    ``options``: these options as one :class:`~neurocorr_core.options.Options` (checked when it is
    made); keywords given beside it replace its fields. ``provider_a``/``provider_b`` and
    ``options_a``/``options_b``: the provider (plugin name) and provider options of each model.
    Returns a :class:`Comparison` with the network score in both directions.
    """
    pm = plugin_manager or get_plugin_manager()
    opts = Options.of(options, **keywords)  # every option checked, in one place
    sharded = check_sharding(opts.executor, opts.scheduler, opts.workers, opts.shards, opts.cache,
                             opts.significance, options=opts.executor_options, plugin_manager=pm)
    given = (None if probe is None else load_probe(probe), None if probe_b is None else load_probe(probe_b))
    metric_cls = pm.metric(opts.metric)
    matcher = pm.matching(opts.matching)(**(opts.matching_options or {}))
    constant = constant_policy(opts.constant_neurons, matcher)
    _check_combination(metric_cls, matcher, opts.sample_neurons)
    prov_a = open_model(model_a, provider=provider_a, pm=pm, side="model A", **(options_a or {}))
    prov_b: ActivationProvider | None = None
    try:
        prov_b = open_model(model_b, provider=provider_b, pm=pm, side="model B", **(options_b or {}))
        probe, second = _probes(*_side_probes(prov_a, prov_b, *given), opts.sample_probe, opts.seed)
        if sharded:
            _whole(probe, second)  # before the models run
        a = _side(prov_a, model_a, opts.layers_a, probe, opts.neurons)
        b = _side(prov_b, model_b, opts.layers_b, second, opts.neurons)
    except BaseException:
        prov_a.close()
        if prov_b is not None:
            prov_b.close()
        raise
    keep = opts.significance
    try:
        plan = build_plan(metric_cls, matcher, a, b, samples=_rows(prov_a, prov_b, probe, second, opts),
                          constant=constant, penalty=opts.depth_penalty, absolute=opts.absolute,
                          options=opts.metric_options, budget=opts.budget, sample=opts.sample_neurons, seed=opts.seed)
        plan.fit(opts.budget, keep)
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        metrics: list[Any] = []
        passes = plan.passes()
        if sharded and passes[0] is not None:
            raise NeurocorrError(f"memory budget {human(opts.budget or 0)} needs bands of neurons (a pass over the "
                                 "probe each), which run in this process only: leave out executor and shards "
                                 "(--executor, --shards), or raise memory_budget for tiles that keep the rows")
        if sharded:  # the same plan, shard by shard on an executor (the neurocorr-scale plugin runs it)
            sides = (ShardedModel(model_a, prov_a, options_a or {}), ShardedModel(model_b, prov_b, options_b or {}))
            metrics, ran = _sharded(plan, sides, _whole(probe, second), opts, pm)
        else:  # one pass over the probe, or one per band of neurons (neurocorr_core.bands)
            overlap = _overlaps(prov_a, prov_b, probe, second, opts) and passes == [None]
            for band in passes:
                token = short_chunks.set(overlap)
                try:
                    acc = plan.accumulator(band)
                finally:
                    short_chunks.reset(token)
                batches = _stream((prov_a, a), (prov_b, b), probe, second, opts.neurons, opts.batch_size)
                if overlap:  # one thread each for the forwards and the metric: BLAS on one thread
                    batches = overlapped(batches, max(1, OVERLAP_CHUNK // opts.batch_size))
                with single_thread(overlap):
                    for x, y in _progress(batches, opts.progress, -(-len(probe) // opts.batch_size)):
                        acc.update(x, y)
                        if keep:
                            xs.append(x)
                            ys.append(y)
                        del x, y  # one batch held at a time (overlapped: and those made ahead)
                metrics = plan.absorb(band, acc.metrics, metrics)
                del acc  # before the next band's state is made
    finally:
        prov_a.close()
        prov_b.close()
    outcome = plan.finish(metrics)
    del metrics
    significance = None
    if keep:
        x_all, y_all = np.concatenate(xs), np.concatenate(ys)
        xs.clear()
        ys.clear()
        significance = assess(outcome.score.symmetric, plan.scorer(opts.batch_size), x_all, y_all,
                              permutations=opts.permutations, bootstrap=opts.bootstrap,
                              confidence=opts.confidence, seed=opts.seed)
    config = {"metric": opts.metric, "matching": opts.matching, "neurons": opts.neurons,
              "layers_a": opts.layers_a, "layers_b": opts.layers_b, "depth_penalty": opts.depth_penalty,
              "absolute": opts.absolute, "batch_size": opts.batch_size, "probe": probe.name,
              "probe_b": second.name,
              "provider_a": prov_a.name, "provider_b": prov_b.name,
              "constant_neurons": constant, "metric_options": opts.metric_options or {},
              "matching_options": opts.matching_options or {},
              "memory_budget": opts.budget, "tiles": outcome.tiles,
              "sampling": {"seed": opts.seed, "neurons": opts.sample_neurons, "probe": opts.sample_probe,
                           "probe_samples": len(probe),
                           "sampled_a": None if plan.sampled_a is None else len(plan.sampled_a),
                           "sampled_b": None if plan.sampled_b is None else len(plan.sampled_b)},
              "significance": {"permutations": opts.permutations, "bootstrap": opts.bootstrap,
                               "confidence": opts.confidence}}
    if sharded:
        config["executor"] = ran
    return make_comparison(plan, outcome, config=config, versions=pm.versions(), significance=significance)


# -- setup ------------------------------------------------------------------------------------
def index_probe(provider: ActivationProvider) -> Probe | None:
    """The probe a provider that holds its samples is fed (sample k is the number k); None for a model."""
    if not provider.holds_samples:
        return None
    label = getattr(provider, "label", provider.name)
    return Probe(np.arange(provider.samples, dtype=np.float32)[:, None], f"samples of {label}")


def _side_probes(prov_a: ActivationProvider, prov_b: ActivationProvider, probe: AnyProbe | None,
                 probe_b: AnyProbe | None) -> tuple[AnyProbe, AnyProbe | None]:
    """The probe of each side: precomputed activations are fed their sample indices; a model,
    the probe given (``probe_b`` for B when given). The second is None when both share one."""
    index_a, index_b = index_probe(prov_a), index_probe(prov_b)
    for index, side in ((index_a, "A"), (index_b, "B")):
        other = probe_b if side == "B" and probe_b is not None else probe
        if index is not None and other is not None and len(other) != len(index):
            raise NeurocorrError(f"model {side} is activations of {len(index)} samples, but the probe holds "
                                 f"{len(other)}: activations and probe must cover the same samples, in order")
    first = index_a if index_a is not None else probe
    second = index_b if index_b is not None else probe_b if probe_b is not None else probe
    if first is None or second is None:
        side = "A" if first is None else "B"
        raise NeurocorrError(f"model {side} is a model, not precomputed activations: it needs a probe, the "
                             f"inputs it is run on (got NoneType None); a probe must be {ACCEPTED}")
    if index_a is not None and index_b is not None and len(index_a) != len(index_b):
        raise NeurocorrError(f"the activations hold different numbers of samples: {len(index_a)} for A, "
                             f"{len(index_b)} for B; both must come from the same probe samples, in the same order")
    return first, (None if second is first else second)


def _rows(prov_a: ActivationProvider, prov_b: ActivationProvider, probe: AnyProbe, second: AnyProbe,
          opts: Options) -> int:
    """The rows a memory budget is planned for: the provider's count of its view's rows (the real
    tokens under the token view; the larger side's), else one a probe sample."""
    counts = [prov.rows(p, opts.neurons) for prov, p in ((prov_a, probe), (prov_b, second))
              if opts.budget is not None and isinstance(prov, ActivationProvider)]
    return max((c for c in counts if c is not None), default=len(probe))


def _whole(probe: AnyProbe, second: AnyProbe) -> tuple[Probe, Probe]:
    """Probes with random access, which shards need; a streamed probe is refused."""
    if not (isinstance(probe, Probe) and isinstance(second, Probe)):
        raise NeurocorrError("a streamed probe (DataLoader, tf.data, batches) cannot be split into shards: "
                             "give an array or a .npy file (neurocorr extract writes one), or no executor")
    return probe, second


def _probes(probe: AnyProbe, probe_b: AnyProbe | None, amount: Amount, seed: int) -> tuple[AnyProbe, AnyProbe]:
    first = probe
    second = first if probe_b is None else probe_b
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


def _subset(probe: AnyProbe, idx: np.ndarray, seed: int) -> AnyProbe:
    name = f"{probe.name}[{len(idx)} of {len(probe)}, seed {seed}]"
    if isinstance(probe, StreamProbe):
        return probe.subset(idx, name)
    labels = None if probe.labels is None else probe.labels[idx]
    return Probe(np.asarray(probe.data[idx]), name, labels)


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


def _side(prov: ActivationProvider, model: object, selector: Selector, probe: AnyProbe, neurons: str) -> Side:
    """The selected layers of an opened model, from a 2-sample forward pass; precomputed
    activations select every layer by default."""
    arrays = index_probe(prov) is not None
    label = "activations" if arrays and not isinstance(model, (str, os.PathLike)) else describe(model)
    if selector is None and arrays:
        selector = "*"
    sample = next(probe.head(2).batches(2))
    try:
        found = prov.layers(sample)
    except Exception as exc:
        hint = _shape_hint(prov, sample)
        if not hint:
            raise
        raise NeurocorrError(f"{label} could not run the probe ({type(exc).__name__}: {exc}); {hint}") from exc
    layers = select_layers(found, selector, label)
    return Side.of(label, layers, neurons)


def _shape_hint(prov: ActivationProvider, sample: np.ndarray) -> str:
    """What to do about a probe the model did not take: the input shape the provider knows the model
    expects (an optional ``input_shape`` attribute), and a channels-last probe's transpose."""
    hints = []
    expected = getattr(prov, "input_shape", None)
    if expected is not None:
        hints.append(f"the model expects inputs of shape {tuple(expected)}, the probe's samples are "
                     f"{tuple(sample.shape[1:])}")
    if sample.ndim == 4 and sample.shape[3] in (1, 3, 4) and sample.shape[1] > 4:
        hints.append(f"the probe {tuple(sample.shape[1:])} looks channels-last (H, W, C): neurocorr's image "
                     "probes are NCHW, so transpose it (x.transpose(0, 3, 1, 2)), or, for a model that takes "
                     "NHWC, give the provider option layout=nhwc (--option-a layout=nhwc)")
    return "; ".join(hints)


# -- scale out ---------------------------------------------------------------------------------
def _sharded(plan: Plan, sides: tuple[ShardedModel, ShardedModel], probes: tuple[Probe, Probe], opts: Options,
             pm: PluginManager) -> tuple[list[Metric], dict[str, Any]]:
    """The merged metrics of the plan run shard by shard, and what ran; an executor started here
    is closed here."""
    if opts.shards is not None:
        shard_bounds(len(probes[0]), opts.shards)  # a count that cannot work fails before a cluster starts
    ex = get_executor(opts.executor, scheduler=opts.scheduler, workers=opts.workers,
                      options=opts.executor_options, plugin_manager=pm)
    try:
        done = pm.run_sharded(ShardedRun(plan, sides, probes, opts.neurons, opts.batch_size, ex, opts.shards,
                                         opts.cache))
    finally:
        if ex is not opts.executor:
            ex.close()
    return done.metrics, done.ran


# -- streaming ---------------------------------------------------------------------------------
def _stream(a: tuple[ActivationProvider, Side], b: tuple[ActivationProvider, Side], probe_a: AnyProbe,
            probe_b: AnyProbe, neurons: str, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each probe batch's neurons of A and of B, every selected layer side by side. One pass over
    a streamed probe feeds both models (a loader is read once, in one order)."""
    (prov_a, side_a), (prov_b, side_b) = a, b
    shared = probe_b is probe_a and isinstance(probe_a, StreamProbe)
    feed_a, feed_b = (itertools.tee(probe_a.batches(batch_size)) if shared
                      else (probe_a.batches(batch_size), probe_b.batches(batch_size)))
    outs_a = neuron_batches(prov_a, feed_a, [la.name for la in side_a.layers], neurons, side_a.label)
    outs_b = neuron_batches(prov_b, feed_b, [lb.name for lb in side_b.layers], neurons, side_b.label)
    for out_a, out_b in zip(outs_a, outs_b, strict=True):
        x, y = np.concatenate(list(out_a.values()), axis=1), np.concatenate(list(out_b.values()), axis=1)
        del out_a, out_b  # the layers' views, copied into x and y: not held while the next batch runs
        if len(x) != len(y):  # rows are samples: tokens of two tokenizations need not pair up
            raise NeurocorrError(f"model A gave {len(x)} samples and model B {len(y)} for the same probe batch "
                                 f"(view {neurons!r}); with the token view the two tokenizers split the text "
                                 "differently: compare whole texts (--neurons mean or first) or words (provider "
                                 "option unit=word)")
        yield x, y
        del x, y


def _overlaps(prov_a: ActivationProvider, prov_b: ActivationProvider, probe: AnyProbe, second: AnyProbe,
              opts: Options) -> bool:
    """Whether the next batches are made while the metric works (:mod:`.overlap`): both models
    run a batch on one thread, the machine has a core for each, and no memory budget is set
    (the batches made ahead are not in its plan)."""
    return opts.budget is None and (os.cpu_count() or 1) > 1 and all(
        prov.single_threaded((opts.batch_size, *p.sample_shape)) for prov, p in ((prov_a, probe), (prov_b, second)))


def _progress(items: Iterator[Any], enabled: bool, total: int) -> Iterator[Any]:
    if not enabled or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return iter(tqdm(items, total=total, desc="probe batches", unit="batch", leave=False))
