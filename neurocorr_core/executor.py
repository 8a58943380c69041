"""Executors: where the shard tasks of a comparison or a grid run (in this process, or on Dask).

The probe is split into contiguous shards. For every shard, one task per model extracts its
neurons (:func:`extract`: a forward pass, or the activation cache), one task per pair of
models feeds that pair's metrics with them (:func:`accumulate`), and a pair's shard metrics
are folded together in shard order (:func:`merge`, the metrics' exact ``merge``). A model's
neurons are extracted once per shard however many pairs use them. A grid's pair is then
finished (matching, network score: :func:`finish_pair`) where its merged metrics are, and only
its outcome travels back; compare() receives the merged metrics and finishes them itself.

``local`` runs those tasks one after another in this process; ``dask`` submits them to a
``dask.distributed`` cluster (an existing scheduler, or a LocalCluster it starts on
127.0.0.1). Both run the same functions in the same merge order, so their results agree to
rounding. On Dask, models travel as file paths or ``module:callable`` references (workers
must be able to read the files or import the modules), never as objects.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cache import ActivationCache, EntryKey, model_fingerprint, probe_fingerprint
from .checks import call_metric
from .errors import NeurocorrError
from .interfaces import ActivationProvider, Executor, LayerInfo, Metric
from .models import describe, resolve_model
from .pipeline import Accumulator, MetricPlan, Outcome, Plan
from .probe import Probe
from .views import neuron_batches

EXECUTORS = ("local", "dask")
#: Seconds to wait for a Dask scheduler (connecting, or starting a LocalCluster); the
#: environment variable overrides it.
CONNECT_TIMEOUT = 10.0
TIMEOUT_ENV = "NEUROCORR_DASK_TIMEOUT"
#: The protocols a Dask scheduler address may name (``inproc`` only works inside one process).
SCHEDULER_PROTOCOLS = ("tcp", "tls", "ws", "wss", "ucx")


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

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise NeurocorrError(f"threads must be a whole number of at least 1, got {threads!r}")
            try:
                import threadpoolctl  # noqa: F401
            except ImportError:
                raise NeurocorrError("limiting the local executor's threads needs threadpoolctl: "
                                     "pip install threadpoolctl (or 'neurocorr-core[dask]')") from None

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


class DaskExecutor(Executor):
    """Tasks on a ``dask.distributed`` cluster: the scheduler at ``scheduler`` (e.g.
    ``tcp://127.0.0.1:8786``), or a LocalCluster of ``workers`` single-threaded worker
    processes on 127.0.0.1 (default 2) that :meth:`close` shuts down.

    Dask's own log messages are held back while this executor connects, runs and closes:
    every failure it reports reaches the caller as one :class:`NeurocorrError` instead (a
    scheduler that goes away mid-run: :class:`ClusterLost`)."""

    name = "dask"
    remote = True

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 timeout: float | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise NeurocorrError("the dask executor needs dask.distributed; install it with: "
                                 "pip install 'neurocorr-core[dask]' (or pip install 'dask[distributed]')"
                                 ) from None
        self.cluster: Any = None
        self.scheduler = scheduler
        self._finished: set[Any] = set()
        timeout = connect_timeout() if timeout is None else timeout
        self.timeout = timeout
        if scheduler is not None:
            if workers is not None:
                raise NeurocorrError("--workers starts a local cluster; with --scheduler the cluster's own "
                                     "workers run the tasks: give one of them, not both")
            check_scheduler_address(scheduler)
            with _quiet_dask():
                self.client = _connect(Client, scheduler, timeout)
                self._wait_for_a_worker(timeout)
        else:
            count = 2 if workers is None else workers
            with _quiet_dask():
                try:
                    # the scheduler's HTTP server (metrics) on a free port: 8787 may be taken; its
                    # workers' logs held back too (they share this process's stderr)
                    self.cluster = LocalCluster(n_workers=count, threads_per_worker=1, host="127.0.0.1",
                                                dashboard_address=None, processes=True,
                                                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                                silence_logs=logging.CRITICAL + 1)
                except (RuntimeError, OSError, TimeoutError) as exc:
                    raise NeurocorrError(
                        f"could not start a local Dask cluster of {count} worker{'s' * (count != 1)} ({exc}). "
                        "A script that starts one needs an 'if __name__ == \"__main__\":' guard, since each "
                        "worker is a new Python process that imports it; or start the cluster yourself and "
                        "pass --scheduler") from None
                self.client = Client(self.cluster, timeout=timeout, set_as_default=False)

    def _wait_for_a_worker(self, timeout: float) -> None:
        """A scheduler without workers would hold the tasks for ever: wait ``timeout`` seconds
        for one, then say so."""
        try:
            self.client.wait_for_workers(1, timeout=timeout)
        except (TimeoutError, OSError):
            self.close()
            raise NeurocorrError(
                f"the Dask scheduler at {self.scheduler} has no workers (none joined within {timeout:g} s); "
                f"start some ('dask worker {self.scheduler} --nthreads 1'), or leave out --scheduler to "
                "start a local cluster") from None

    def where(self) -> str:
        return f"the Dask scheduler at {self.scheduler}" if self.scheduler else "the local Dask cluster"

    def put(self, value: Any) -> Any:
        self._check_connected()
        return self.client.scatter(value)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        self._check_connected()
        future = self.client.submit(fn, *args, pure=False)
        future.add_done_callback(self._note_done)
        return future

    def _note_done(self, future: Any) -> None:
        # runs in Dask's callback thread; a lost connection later marks every future cancelled,
        # so what had finished is remembered here
        if future.status == "finished":
            self._finished.add(future.key)

    def token(self, handle: Any) -> Any:
        return handle.key

    def finished(self, token: Any) -> bool:
        return token in self._finished

    def _check_connected(self) -> None:
        if self.client.status not in ("running", "connecting", "newly-created"):
            raise ClusterLost(f"{self.where()} is not connected (client {self.client.status})")

    def as_completed(self, handles: Mapping[Any, Any]) -> Iterator[tuple[Any, Any]]:
        from concurrent.futures import CancelledError

        from distributed import as_completed

        tags = {future.key: tag for tag, future in handles.items()}
        with _quiet_dask():
            for future, result in as_completed(list(handles.values()), loop=self.client.loop,
                                                  with_results=True, raise_errors=False):
                if future.status == "cancelled" or isinstance(result, CancelledError):
                    reason = getattr(result, "reason", "cancelled")
                    raise ClusterLost(f"{self.where()} went away mid-run ({reason})")
                if future.status == "error":
                    _raise_task_error(result)
                yield tags[future.key], result

    def describe(self) -> str:
        where = self.scheduler or "a local cluster on 127.0.0.1"
        return f"dask ({where}, {len(self.client.scheduler_info().get('workers', {}))} workers)"

    def close(self) -> None:
        # after a lost scheduler the client cannot close gracefully: give it a short while, then
        # let go (what it held is gone with the scheduler)
        lost = self.client.status not in ("running", "connecting")
        with _quiet_dask():
            with contextlib.suppress(Exception):
                self.client.close(timeout=2 if lost else 2 * self.timeout)
            _abandon(self.client)
            if self.cluster is not None:
                with contextlib.suppress(Exception):
                    self.cluster.close(timeout=2 * self.timeout)


class ClusterLost(NeurocorrError):
    """The Dask scheduler (or the local cluster) went away while a run was using it."""


def _raise_task_error(error: Any) -> None:
    """Raise a failed task's exception (``(type, exception, traceback)``); a task that killed
    every worker it ran on (out of memory, a crash in native code) as a NeurocorrError."""
    _, exc, tb = error
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        deaths = exc.allowed_failures + 1
        raise NeurocorrError(
            f"the worker running one of this run's tasks died ({deaths} time{'s' * (deaths > 1)}: killed when "
            "out of memory, or a crash in the model's code), so Dask gave up on it; give the "
            "workers more memory, use more --shards (smaller tasks) or a smaller --batch-size") from None
    raise exc.with_traceback(tb)


def check_scheduler_address(address: object) -> str:
    """``address`` as a Dask scheduler address ``[PROTOCOL://]HOST:PORT`` (nothing is contacted)."""
    hint = ("write PROTOCOL://HOST:PORT, e.g. tcp://127.0.0.1:8786 (the address 'dask scheduler' "
            "prints as 'Scheduler at:'; not its dashboard's http:// address)")
    if not isinstance(address, str) or not address.strip():
        raise NeurocorrError(f"--scheduler {address!r} is not a Dask scheduler address; {hint}")
    scheme, sep, rest = address.strip().partition("://")
    if not sep:
        scheme, rest = "tcp", address.strip()
    if scheme not in SCHEDULER_PROTOCOLS:
        raise NeurocorrError(f"--scheduler {address!r}: {scheme!r} is not a Dask protocol (one of "
                             f"{', '.join(SCHEDULER_PROTOCOLS)}); {hint}")
    host, colon, port = rest.rpartition(":")
    if not colon or not host.strip("[]") or "/" in rest or not port.isdigit() or not 0 < int(port) < 65536:
        raise NeurocorrError(f"--scheduler {address!r} has no valid host and port; {hint}")
    return address.strip()


def _connect(client_cls: Any, address: str, timeout: float) -> Any:
    """A Client of the scheduler at ``address``, or a NeurocorrError within about ``timeout``
    seconds (Dask's own connect waits for ever on a server that accepts and stays silent)."""
    def refuse(why: str) -> NeurocorrError:
        return NeurocorrError(
            f"cannot reach the Dask scheduler at {address!r} ({why}). "
            "Start one ('dask scheduler --host 127.0.0.1', then 'dask worker ADDRESS'), check the "
            "address, or leave out --scheduler to start a local cluster")

    why = _handshake_fails(address, timeout)
    if why:
        raise refuse(why)
    client = client_cls.__new__(client_cls)  # held before __init__ connects, to clean up after it
    try:
        client.__init__(address, timeout=timeout, set_as_default=False)
        return client
    except Exception as exc:  # whatever a Dask server that is not a scheduler (a worker) makes Dask raise
        _abandon(client)
        raise refuse(f"it answers, but did not accept this client within {timeout:g} s: is it a worker's "
                     f"address? {type(exc).__name__}: {_first_line(exc)}") from None


def _handshake_fails(address: str, timeout: float) -> str | None:
    """Why nothing at ``address`` answers Dask's handshake within ``timeout`` seconds (a refused
    connection at once), or None. Runs on its own event loop in a thread, so it works where a
    loop is already running (a notebook)."""
    import asyncio
    import socket
    import threading

    scheme, _, rest = address.partition("://") if "://" in address else ("tcp", "", address)
    host, _, port = rest.rpartition(":")
    if scheme in ("tcp", "tls", "ws", "wss"):
        try:  # a refused or unknown address fails here at once, not after Dask's retries
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
        except OSError as exc:
            return f"{exc.strerror or exc}"

    async def handshake() -> None:
        from distributed.comm import connect

        comm = await asyncio.wait_for(connect(address, timeout=timeout), timeout)
        await comm.close()

    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            asyncio.run(handshake())
            outcome.append(None)
        except (OSError, TimeoutError, ValueError) as exc:
            detail = f": {type(exc).__name__}: {_first_line(exc)}" if str(exc) else ""
            outcome.append(f"no answer to Dask's handshake within {timeout:g} s{detail}")
        except Exception as exc:  # whatever a server that is not Dask makes Dask raise
            outcome.append(f"not a Dask scheduler: {type(exc).__name__}: {_first_line(exc)}")

    thread = threading.Thread(target=attempt, daemon=True, name="neurocorr-dask-handshake")
    thread.start()
    thread.join(timeout + 5)
    return outcome[0] if outcome else f"no answer to Dask's handshake within {timeout:g} s"


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else "no answer"


def _abandon(client: Any) -> None:
    """Make a Client that could not start, or lost its scheduler, forget it: mark it closed (so
    that its ``__del__`` does not wait 2 x timeout at exit for a close that cannot succeed)
    and stop its event loop thread."""
    if getattr(client, "status", "closed") == "closed":
        return
    client.status = "closed"
    with contextlib.suppress(Exception):
        client._loop_runner.stop()


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Hold back Dask's log messages (errors included): what they report reaches the caller as
    a NeurocorrError, and a command's error is one line."""
    names = ["distributed", *(n for n in list(logging.root.manager.loggerDict) if n.startswith("distributed."))]
    loggers = [logging.getLogger(name) for name in names]  # Dask's config sets levels per logger
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def connect_timeout() -> float:
    """Seconds to wait for a scheduler: ``$NEUROCORR_DASK_TIMEOUT`` or :data:`CONNECT_TIMEOUT`."""
    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return CONNECT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise NeurocorrError(f"{TIMEOUT_ENV}={text!r} must be a positive number of seconds; set it to e.g. "
                             f"{CONNECT_TIMEOUT:g}, or unset it")
    return value


def check_options(executor: str | Executor | None = None, scheduler: str | None = None,
                  workers: int | None = None, shards: int | None = None) -> str:
    """The executor's name, once its options are known to fit together (nothing is started)."""
    dask_options = scheduler is not None or workers is not None
    name = executor.name if isinstance(executor, Executor) else executor or ("dask" if dask_options else "local")
    for label, value in (("workers", workers), ("shards", shards)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise NeurocorrError(f"{label} must be a whole number of at least 1, got {value!r}; "
                                 f"give e.g. --{label} 2, or leave it out")
    if name not in EXECUTORS:
        raise NeurocorrError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
    if name == "local" and dask_options:
        raise NeurocorrError("--scheduler and --workers belong to the dask executor; add --executor dask")
    if isinstance(executor, Executor) and dask_options:
        raise NeurocorrError("give either a started executor or --scheduler/--workers, not both")
    if scheduler is not None:
        check_scheduler_address(scheduler)
    return name


def get_executor(executor: str | Executor | None = None, *, scheduler: str | None = None,
                 workers: int | None = None, timeout: float | None = None) -> Executor:
    """An executor by name (``local``, ``dask``); an :class:`Executor` is returned as it is."""
    name = check_options(executor, scheduler, workers)
    if isinstance(executor, Executor):
        return executor
    if name == "dask":
        return DaskExecutor(scheduler, workers, timeout)
    return LocalExecutor()


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


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous ranges covering ``range(n)``, sizes differing by at most one."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise NeurocorrError(f"shards must be a whole number of at least 1, got {shards!r}")
    if shards > n // 2:
        raise NeurocorrError(f"{shards} shards of a {n}-sample probe leave shards of fewer than 2 samples; "
                             f"use at most {max(1, n // 2)} shards")
    edges = np.linspace(0, n, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


# -- the tasks (module-level functions, so they pickle by name) ----------------------------------------
def extract(source: ModelSource, layers: tuple[LayerInfo, ...], view: str, shard: Shard, data: np.ndarray,
            batch_size: int, cache: ActivationCache | None) -> np.ndarray:
    """The model's neurons over one shard: float32 (samples, sum of the layers' neurons), the
    layers' views side by side; each layer from the cache when it holds it, else from one
    forward pass over the shard for all missing layers (then stored)."""
    keys = {layer.name: EntryKey(source.fingerprint, layer.name, view, shard.fingerprint)
            for layer in layers} if cache is not None and source.fingerprint else {}
    found: dict[str, np.ndarray] = {}
    for name, key in keys.items():
        array = cache.get(key) if cache is not None else None
        if array is not None and array.shape[0] == shard.stop - shard.start:
            found[name] = array
    missing = [layer for layer in layers if layer.name not in found]
    if missing:
        found.update(_forward(source, missing, view, data, batch_size, shard.name))
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
    except ClusterLost as exc:
        done = [bounds[i] for i, tokens in enumerate(extracted) if all(map(executor.finished, tokens))]
        restart = "start the scheduler again and " if getattr(executor, "scheduler", None) else ""
        raise ClusterLost(f"{exc}; {_shards_kept(done, len(bounds), cache, restart)}") from None


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


# -- options shared by compare, grid and predict ---------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser, cache_default: bool = False) -> None:
    """The executor, shard and cache options of a command (docs/scale-out.md)."""
    g = p.add_argument_group("scale out (docs/scale-out.md)")
    g.add_argument("--executor", choices=EXECUTORS, help="where tasks run: local (default) or dask")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="dask: the scheduler to use, e.g. tcp://127.0.0.1:8786 (default: start a local "
                        "cluster)")
    g.add_argument("--workers", type=int, metavar="N", help="dask: worker processes of the local cluster "
                                                            "(default 2)")
    g.add_argument("--shards", type=int, metavar="N",
                   help="split the probe into N shards (default: 1 locally, one per worker on dask)")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="activation cache folder" + (" (default $NEUROCORR_CACHE_DIR or ~/.cache/neurocorr/"
                                                     "activations)" if cache_default else " (default: no "
                                                                                          "cache)"))
    if cache_default:
        g.add_argument("--no-cache", action="store_true", help="do not read or write the activation cache")


def options_from(args: argparse.Namespace, cache_default: bool = False) -> dict[str, Any]:
    """compare()/grid() keywords from the parsed options of :func:`add_arguments`."""
    check_options(args.executor, args.scheduler, args.workers, args.shards)
    cache: Any = args.cache_dir
    if cache_default and not cache:
        cache = not getattr(args, "no_cache", False)
    return {"executor": args.executor, "scheduler": args.scheduler, "workers": args.workers,
            "shards": args.shards, "cache": cache}


def default_shards(executor: Executor, shards: int | None, samples: int) -> int:
    """One shard locally; on Dask one per worker (at most one per two samples)."""
    if shards is not None:
        return shards
    if not executor.remote:
        return 1
    client = getattr(executor, "client", None)
    workers = len(client.scheduler_info().get("workers", {})) if client is not None else 1
    return max(1, min(workers or 1, samples // 2))


# -- compare() on an executor ----------------------------------------------------------------------------
def check_sharding(executor: str | Executor | None, scheduler: str | None, workers: int | None,
                   shards: int | None, cache: Any, significance: bool) -> bool:
    """True when compare() should run its plan through :func:`sharded_metrics` (any of the
    options given), once the options are known to fit together."""
    if all(v is None or v is False for v in (executor, scheduler, workers, shards, cache)):
        return False
    check_options(executor, scheduler, workers, shards)
    if significance:
        raise NeurocorrError("the permutation null and the bootstrap resample all activations in one "
                             "process, so they do not run on an executor or with shards or the cache; drop "
                             "--executor, --shards and --cache-dir, or drop --permutations and --bootstrap")
    return True


def sharded_metrics(plan: Plan, sources: tuple[ModelSource, ModelSource], probes: tuple[Probe, Probe],
                    neurons: str, batch_size: int, *, executor: str | Executor | None = None,
                    scheduler: str | None = None, workers: int | None = None, shards: int | None = None,
                    cache: Any = None) -> tuple[list[Metric], dict[str, Any]]:
    """compare()'s plan run shard by shard on an executor. ``sources``: how tasks open each
    side's model (:func:`model_source`). Returns the merged metrics (what ``plan.finish`` reads)
    and what ran (executor, shards, cache folder) for the result's config."""
    from .cache import open_cache

    store = open_cache(cache)
    job = PairJob("a", "b", plan.metric_plan)
    extractions = {"a": Extraction(sources[0], tuple(plan.a.layers), neurons, probes[0]),
                   "b": Extraction(sources[1], tuple(plan.b.layers), neurons, probes[1])}
    if shards is not None:
        shard_bounds(len(probes[0]), shards)  # a shard count that cannot work fails before a cluster starts
    ex = get_executor(executor, scheduler=scheduler, workers=workers)
    try:
        check_travels(sources, ex)
        count = default_shards(ex, shards, len(probes[0]))
        ((_, metrics),) = list(run_pairs(ex, extractions, {"ab": job}, shards=count, batch_size=batch_size,
                                         cache=store))
        what = ex.describe()
    finally:
        if ex is not executor:
            ex.close()
    ran = {"executor": what, "shards": count, "cache": None if store is None else str(store.root)}
    return metrics, ran
