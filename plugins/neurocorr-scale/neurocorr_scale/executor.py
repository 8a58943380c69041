"""Executors: where the shard tasks of a comparison or a grid run (in this process, or on a plugin's).

The probe is split into contiguous shards. For every shard, one task per model extracts its
neurons (:func:`extract`: a forward pass, or the activation cache), one task per pair of
models feeds that pair's metrics with them (:func:`accumulate`), and a pair's shard metrics
are folded together in shard order (:func:`merge`, the metrics' exact ``merge``). A model's
neurons are extracted once per shard however many pairs use them. A grid's pair is then
finished (matching, network score: :func:`finish_pair`) where its merged metrics are, and only
its outcome travels back; compare() receives the merged metrics and finishes them itself.

``local`` runs those tasks one after another in this process; an executor plugin runs them
elsewhere (neurocorr-dask's ``dask``: on a ``dask.distributed`` cluster). Every executor runs
the same functions in the same merge order, so their results agree to rounding. On a remote
executor, models travel as file paths or ``module:callable`` references (workers must be able
to read the files or import the modules), never as objects. Which executor runs, and with which
options, is chosen in :mod:`neurocorr_core.scale_out`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurocorr_core.checks import call_metric
from neurocorr_core.errors import NeurocorrError
from neurocorr_core.interfaces import ActivationProvider, Executor, LayerInfo, Metric
from neurocorr_core.models import describe, resolve_model
from neurocorr_core.pipeline import Accumulator, MetricPlan, Outcome, Plan
from neurocorr_core.probe import Probe
from neurocorr_core.scale_out import default_shards, shard_bounds
from neurocorr_core.sharding import ShardedOutcome, ShardedRun
from neurocorr_core.views import neuron_batches

from .cache import ActivationCache, EntryKey, model_fingerprint, probe_fingerprint


# -- executors ------------------------------------------------------------------------------------
@dataclass
class _Done:
    value: Any


class LocalExecutor(Executor):
    """Every task runs at once, in this process, in submission order.

    ``threads``: run each task with the BLAS and OpenMP thread pools limited to this many
    threads (needs threadpoolctl). A float32 GEMM's rounding can depend on how many threads
    share it, so ``threads=1`` reproduces, bit for bit, what a Dask worker (one thread) computes;
    None (default) leaves the pools as they are (fastest).
    """

    name = "local"

    def __init__(self, threads: int | None = None, **options: Any) -> None:
        super().__init__(**options)  # refuses an option no constructor took, naming those it takes
        self.threads = threads
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise NeurocorrError(f"threads must be a whole number of at least 1, got {threads!r}")
            try:
                import threadpoolctl  # noqa: F401
            except ImportError:
                raise NeurocorrError("limiting the local executor's threads needs threadpoolctl: "
                                     "pip install threadpoolctl (or 'neurocorr-scale[threads]')") from None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        values = [a.value if isinstance(a, _Done) else a for a in args]
        if self.threads is None:
            return _Done(fn(*values))
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads):
            return _Done(fn(*values))

    def describe(self) -> str:
        if self.threads is None:
            return "local"
        return f"local ({self.threads} BLAS thread{'s' * (self.threads > 1)})"

    def as_completed(self, handles: Mapping[Any, Any]) -> Iterator[tuple[Any, Any]]:
        for tag, handle in handles.items():
            yield tag, handle.value


class ExecutorLost(NeurocorrError):
    """The cluster an executor runs its tasks on went away mid-run (an executor plugin raises
    it from ``put``, ``submit`` or ``as_completed``). ``restart``: what the user must start
    again before a re-run (e.g. ``"start the scheduler again"``); empty when a re-run starts
    everything itself."""

    def __init__(self, message: str, restart: str = "") -> None:
        super().__init__(message)
        self.restart = restart


# -- what travels to the workers -----------------------------------------------------------------------
@dataclass
class ModelSource:
    """How a task opens a model: ``spec`` (a path, a ``module:callable`` reference, or, for the
    local executor only, an object), the provider class and its options; ``fingerprint``: the
    activation cache's model key (None: not cached)."""

    label: str
    spec: object
    provider: type[ActivationProvider]
    options: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None

    @property
    def travels(self) -> bool:
        return isinstance(self.spec, (str, os.PathLike))

    def open(self) -> ActivationProvider:
        return self.provider(resolve_model(self.spec), **self.options)


def model_source(spec: object, provider: ActivationProvider,
                 options: Mapping[str, Any] | None = None) -> ModelSource:
    """The :class:`ModelSource` of a model opened as ``provider`` (absolute path for a file)."""
    if isinstance(spec, (str, os.PathLike)) and os.path.exists(spec):
        spec = os.path.abspath(spec)
    own = provider.fingerprint() if hasattr(provider, "fingerprint") else None
    fingerprint = model_fingerprint(spec, provider.name, options, own)
    return ModelSource(describe(spec), spec, type(provider), dict(options or {}), fingerprint)


def check_travels(sources: Iterable[ModelSource], executor: Executor) -> None:
    """On a remote executor, every model must be a path or a reference."""
    if not executor.remote:
        return
    for source in sources:
        if not source.travels:
            raise NeurocorrError(
                f"the {executor.name} executor sends models to its workers as file paths or "
                "'module:callable' references, but got an in-memory "
                f"{type(source.spec).__module__}.{type(source.spec).__qualname__}; "
                "save the model to a file (e.g. torch.jit.save, model.save) or pass a reference to a "
                "function that builds it, or use executor='local'")


@dataclass(frozen=True)
class Extraction:
    """One model's neurons over one probe: its selected layers (forward order), in ``view``."""

    source: ModelSource
    layers: tuple[LayerInfo, ...]
    view: str
    probe: Probe


@dataclass(frozen=True)
class Shard:
    """Samples ``start:stop`` of a probe, with their fingerprint (the cache's probe key)."""

    index: int
    start: int
    stop: int
    fingerprint: str
    name: str


# -- the tasks (module-level functions, so they pickle by name) ----------------------------------------
def extract(source: ModelSource, layers: tuple[LayerInfo, ...], view: str, shard: Shard, data: np.ndarray,
            batch_size: int, cache: ActivationCache | None) -> np.ndarray:
    """The model's neurons over one shard: float32 (rows, sum of the layers' neurons), the
    layers' views side by side (rows: the shard's samples, or under the ``token`` view its real
    tokens); each layer from the cache when it holds it, else from one forward pass over the
    shard for all missing layers (then stored). Cached layers must agree on the rows, with each
    other and with the forward pass; otherwise every layer is computed again."""
    keys = {layer.name: EntryKey(source.fingerprint, layer.name, view, shard.fingerprint)
            for layer in layers} if cache is not None and source.fingerprint else {}
    found = {name: array for name, key in keys.items() if cache is not None and (array := cache.get(key)) is not None}
    rows = {array.shape[0] for array in found.values()}
    if len(rows) > 1 or (view != "token" and rows - {shard.stop - shard.start}):
        found, rows = {}, set()  # entries that disagree (damaged, or of another version): recompute them all
    missing = [layer for layer in layers if layer.name not in found]
    if missing:
        fresh = _forward(source, missing, view, data, batch_size, shard.name)
        if rows and {len(array) for array in fresh.values()} != rows:
            missing, found = list(layers), _forward(source, layers, view, data, batch_size, shard.name)
        else:
            found.update(fresh)
        for layer in missing:
            if cache is not None and layer.name in keys:
                cache.put(keys[layer.name], found[layer.name],
                          {"model": source.label, "probe": shard.name, "samples": shard.stop - shard.start})
    return np.concatenate([found[layer.name] for layer in layers], axis=1)


def _forward(source: ModelSource, layers: Sequence[LayerInfo], view: str, data: np.ndarray,
             batch_size: int, probe_name: str) -> dict[str, np.ndarray]:
    provider = source.open()
    chunks: dict[str, list[np.ndarray]] = {layer.name: [] for layer in layers}
    try:
        for outputs in neuron_batches(provider, Probe(data, probe_name).batches(batch_size), list(chunks),
                                      view, source.label):
            for name, values in outputs.items():
                chunks[name].append(values)
    finally:
        provider.close()
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def accumulate(plan: MetricPlan, x: np.ndarray, y: np.ndarray, batch_size: int) -> list[Metric]:
    """A pair's metrics over one shard, fed in batches of ``batch_size`` as compare() does."""
    acc = Accumulator(plan)
    for start in range(0, len(x), batch_size):
        acc.update(x[start:start + batch_size], y[start:start + batch_size])
    return acc.metrics


def merge(first: list[Metric], other: list[Metric], copy_first: bool) -> list[Metric]:
    """``first`` with ``other`` folded in (exact merge); ``copy_first`` leaves ``first`` as it
    was (a remote task's input may be read again)."""
    out = copy.deepcopy(first) if copy_first else first
    for mine, theirs in zip(out, other, strict=True):
        call_metric(mine, "merge", mine.merge, theirs)  # a plugin's failure names the plugin
    return out


# -- the schedule ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairJob:
    """A pair to compare: the keys of its two extractions and its metric plan; ``finish``: the
    pair's whole :class:`~neurocorr_core.pipeline.Plan`, to finish the pair where its metrics are
    (the task then returns the plan's ``Outcome`` instead of the metrics, so only that travels back)."""

    a: str
    b: str
    plan: MetricPlan
    finish: Plan | None = None


def finish_pair(plan: Plan, metrics: list[Metric]) -> Outcome:
    """The pair's outcome (matching, network score) from its merged metrics."""
    return plan.finish(metrics)


def run_pairs(executor: Executor, extractions: Mapping[str, Extraction], pairs: Mapping[Any, PairJob], *,
              shards: int = 1, batch_size: int = 256,
              cache: ActivationCache | None = None) -> Iterator[tuple[Any, Any]]:
    """Every pair's metrics merged over all shards (or its outcome, for a job with ``finish``),
    as ``(tag, result)`` in completion order.

    The extractions a pair names must cover probes of one length. Tasks are submitted shard by
    shard (so the local executor holds one shard's neurons at a time); a pair's shard metrics
    are merged in shard order whatever the executor.
    """
    if not pairs:
        return
    check_travels((extractions[k].source for job in pairs.values() for k in (job.a, job.b)), executor)
    used = sorted({k for job in pairs.values() for k in (job.a, job.b)})
    lengths = {len(extractions[k].probe) for k in used}
    if len(lengths) != 1:
        raise NeurocorrError(f"the probes of one run differ in length: {sorted(lengths)}; give every model "
                             "the same samples")
    bounds = shard_bounds(lengths.pop(), shards)
    extracted: list[list[Any]] = []  # per shard, its extraction tasks' tokens
    try:
        yield from _schedule(executor, extractions, pairs, used, bounds, batch_size, cache, extracted)
    except ExecutorLost as exc:
        done = [bounds[i] for i, tokens in enumerate(extracted) if all(map(executor.finished, tokens))]
        restart = f"{exc.restart} and " if exc.restart else ""
        raise ExecutorLost(f"{exc}; {_shards_kept(done, len(bounds), cache, restart)}", exc.restart) from None


def _shards_kept(done: list[tuple[int, int]], total: int, cache: ActivationCache | None, restart: str) -> str:
    """What of a run cut short survives, and how to finish it."""
    if not done:
        return f"no probe shard's activations were finished (of {total}); {restart}re-run the command"
    spans = ", ".join(f"{a}:{b}" for a, b in done)
    state = f"the activations of {len(done)} of {total} probe shards (samples {spans}) were finished"
    if cache is None:
        return (f"{state} but not kept (no --cache-dir); {restart}re-run the command, with --cache-dir DIR "
                "so that a re-run after another failure skips the shards already done")
    return (f"{state} and are in the activation cache {cache.root}; {restart}re-run the same command with "
            f"--shards {total}: it reads them from the cache instead of recomputing them")


def _schedule(executor: Executor, extractions: Mapping[str, Extraction], pairs: Mapping[Any, PairJob],
              used: list[str], bounds: list[tuple[int, int]], batch_size: int, cache: ActivationCache | None,
              extracted: list[list[Any]]) -> Iterator[tuple[Any, Any]]:
    """:func:`run_pairs`' tasks, shard by shard; appends each shard's extraction tokens to
    ``extracted``."""
    shard_cache: dict[tuple[int, int], tuple[Shard, Any]] = {}
    merged: dict[Any, Any] = {}
    last = len(bounds) - 1
    for index, (start, stop) in enumerate(bounds):
        done: dict[str, Any] = {}
        for key in used:
            ex = extractions[key]
            if (id(ex.probe), index) not in shard_cache:
                data = np.ascontiguousarray(ex.probe.data[start:stop], dtype=np.float32)
                shard = Shard(index, start, stop, probe_fingerprint(data), f"{ex.probe.name}[{start}:{stop}]")
                shard_cache[(id(ex.probe), index)] = (shard, executor.put(data))
            shard, data_handle = shard_cache[(id(ex.probe), index)]
            done[key] = executor.submit(extract, ex.source, ex.layers, ex.view, shard, data_handle,
                                        batch_size, cache)
        extracted.append([executor.token(handle) for handle in done.values()])
        for tag, job in pairs.items():
            part = executor.submit(accumulate, job.plan, done[job.a], done[job.b], batch_size)
            merged[tag] = part if index == 0 else executor.submit(merge, merged[tag], part, executor.remote)
            if index == last and job.finish is not None:
                merged[tag] = executor.submit(finish_pair, job.finish, merged[tag])
            if index == last and not executor.remote:  # finished now: hand it back before the next pair runs
                yield from executor.as_completed({tag: merged.pop(tag)})
        shard_cache = {k: v for k, v in shard_cache.items() if k[1] != index}  # free this shard's data
        del done
    yield from executor.as_completed(merged)


# -- compare() on an executor ----------------------------------------------------------------------------
def sharded_metrics(run: ShardedRun) -> ShardedOutcome:
    """compare()'s plan run shard by shard on ``run.executor``: the merged metrics (what
    ``plan.finish`` reads) and what ran (executor, shards, cache folder) for the result's config."""
    from .cache import open_cache

    store = open_cache(run.cache)
    plan, probes, ex = run.plan, run.probes, run.executor
    sources = tuple(model_source(m.spec, m.provider, m.options) for m in run.models)
    extractions = {"a": Extraction(sources[0], tuple(plan.a.layers), run.neurons, probes[0]),
                   "b": Extraction(sources[1], tuple(plan.b.layers), run.neurons, probes[1])}
    check_travels(sources, ex)
    count = default_shards(ex, run.shards, len(probes[0]))
    ((_, metrics),) = list(run_pairs(ex, extractions, {"ab": PairJob("a", "b", plan.metric_plan)}, shards=count,
                                     batch_size=run.batch_size, cache=store))
    return ShardedOutcome(metrics, {"executor": ex.describe(), "shards": count,
                                    "cache": None if store is None else str(store.root)})
