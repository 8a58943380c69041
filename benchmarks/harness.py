"""Shared timing and reporting for the performance suite (benchmarks/run_all.py).

Every case runs neurocorr and its reference side by side in the same process, interleaved
(reference, neurocorr, reference, neurocorr, ...) so that a burst of load from elsewhere on
the machine hits both, and reports the median of the repeats. Peak memory is the resident
high-water mark (VmHWM, reset before the run) minus the resident size before it: the memory
the run itself added, input data excluded.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class Row:
    """One printed line: a case, neurocorr's and the reference's median seconds, their ratio,
    the target and whether it is met."""

    case: str
    size: str
    neurocorr_s: float
    reference: str
    reference_s: float
    target: str
    met: bool | None
    peak_mb: float | None = None
    note: str = ""
    runs: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """neurocorr / reference: the median of the ratios of runs made one after the other
        (robust to load that comes and goes), else the ratio of the medians."""
        ours, ref = (self.runs.get(k) for k in ("neurocorr", "reference"))
        if ours and ref and len(ours) == len(ref):
            return statistics.median(a / b for a, b in zip(ours, ref, strict=True))
        return self.neurocorr_s / self.reference_s if self.reference_s else float("nan")


def rss() -> int:
    """Resident bytes of this process now."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) * 1024
    return 0


def peak_added(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and the peak resident memory it added, in MB (Linux: VmHWM reset first)."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:  # not Linux, or not allowed: the lifetime peak is an upper bound
        pass
    before = rss()
    out = fn()
    return out, (_hwm() - before) / 1e6


def interleaved(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each callable, ``repeats`` times, in turn, who goes first alternating (a, b,
    b, a, a, b, ...): a step right after one that freed large arrays pays for fresh memory on
    these VMs (Pearson of 2,048 x 8,192 neurons: 1.9 s after itself, 3.8 s right after the bare
    GEMM). Name the two compared ``reference`` and ``neurocorr`` to get paired ratios in :class:`Row`."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(repeats):
        for name in alternating(runs, repeat):
            fn = runs[name]
            gc.collect()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def alternating(names: Iterable[str], repeat: int) -> list[str]:
    """The order of ``repeat`` in :func:`interleaved`: as given, reversed on odd repeats."""
    order = list(names)
    return order[::-1] if repeat % 2 else order


def rotated(names: Sequence[str], turn: int) -> list[str]:
    """The order of pass ``turn`` when steps are interleaved: rotated by ``turn`` and reversed on
    odd turns, so every step takes every place. A step's time depends on its neighbours (on
    EfficientNet-Lite0, a step always run next to the bare pass measured 2-6% faster)."""
    names = list(names)
    names = names[turn % len(names):] + names[:turn % len(names)]
    return names[::-1] if turn % 2 else names


def by_batch(steps: Mapping[str, tuple[Callable[[Any], object], Sequence[Any]]],
             turn: int) -> dict[str, tuple[float, float]]:
    """One pass over the probe, batch by batch, every step on its own i-th batch in turn (in the
    order of :func:`rotated`), so load from other processes hits all steps alike: each step's
    wall-clock and process CPU seconds (all threads)."""
    total = {name: [0.0, 0.0] for name in steps}
    order = rotated(list(steps), turn)
    for i in range(len(next(iter(steps.values()))[1])):
        for name in order:
            step, batches = steps[name]
            wall, cpu = time.perf_counter(), time.process_time()
            step(batches[i])
            total[name][0] += time.perf_counter() - wall
            total[name][1] += time.process_time() - cpu
    return {name: (w, c) for name, (w, c) in total.items()}


def kernel_costs(runs: dict[str, Callable[[], Any]]) -> tuple[dict[str, Callable[[], Any]], dict[str, list[float]]]:
    """``runs`` wrapped to add up, per name, this process's system CPU seconds and minor page
    faults: on these VMs first-touch faults on freshly mapped memory can cost as much as the
    arithmetic (docs/performance.md, "Memory allocator"), for the reference and neurocorr alike."""
    import resource

    totals = {name: [0.0, 0.0] for name in runs}

    def counted(name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            before = resource.getrusage(resource.RUSAGE_SELF)
            try:
                return fn()
            finally:
                after = resource.getrusage(resource.RUSAGE_SELF)
                totals[name][0] += after.ru_stime - before.ru_stime
                totals[name][1] += after.ru_minflt - before.ru_minflt
        return run

    return {name: counted(name, fn) for name, fn in runs.items()}, totals


def paired_ratio(times: dict[str, list[float]]) -> float:
    """Median over the repeats of neurocorr's time / the reference's time of the same repeat."""
    return statistics.median(a / b for a, b in zip(times["neurocorr"], times["reference"], strict=True))


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def gflops(flops: float, seconds: float) -> str:
    return f"{flops / seconds / 1e9:.0f} GFLOP/s"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {"python": platform.python_version(), "numpy": np.__version__,
                            "cores": os.cpu_count(), "load_average": os.getloadavg()}
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [f"{i['internal_api']} {i.get('version')} {i['num_threads']} threads"
                        for i in threadpool_info() if i["user_api"] == "blas"]
    except ImportError:
        info["blas"] = "threadpoolctl not installed"
    return info


def header(title: str) -> None:
    m = machine()
    load = ", ".join(f"{x:.1f}" for x in m["load_average"])
    print(f"== {title}  [{m['cpu']}, {m['cores']} cores, BLAS {m['blas']}, load average {load}]", flush=True)


def show(rows: Sequence[Row]) -> None:
    for r in rows:
        verdict = {True: "MET", False: "MISSED", None: "-"}[r.met]
        peak = f"{r.peak_mb:8.0f} MB" if r.peak_mb is not None else f"{'':>11}"
        ref = f"{r.reference:<30} {r.reference_s:10.3f} s | ratio {r.ratio:9.3f}" if r.reference_s else \
            f"{'':<30} {'':>12} | {'':>15}"
        print(f"  {r.case:<34} {r.size:<34} neurocorr {r.neurocorr_s:9.3f} s | {ref} | peak {peak} | "
              f"target {r.target:<22} {verdict}" + (f"\n      {r.note}" if r.note else ""), flush=True)


def cli(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (a smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per measurement (median reported)")
    parser.add_argument("--json", default=None, help="append the rows as JSON lines to this file")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS/OpenMP threads for all (threadpoolctl; default: the libraries' own)")
    args = parser.parse_args()
    if args.threads:
        limit_threads(args.threads)
    return args


_limits: Any = None


def limit_threads(threads: int) -> None:
    """Every BLAS and OpenMP pool (numpy, torch, onnxruntime's OpenMP if any) to ``threads``
    for the rest of the process; torch's own pool too when torch is imported later."""
    global _limits
    from threadpoolctl import threadpool_limits

    _limits = threadpool_limits(threads)
    os.environ["NEUROCORR_BENCH_THREADS"] = str(threads)


def torch_threads() -> None:
    """Call after importing torch: its intra-op pool follows ``--threads``."""
    import torch

    wanted = os.environ.get("NEUROCORR_BENCH_THREADS")
    if wanted:
        torch.set_num_threads(int(wanted))


def finish(args: argparse.Namespace, rows: Sequence[Row]) -> None:
    show(rows)
    if args.json:
        with open(args.json, "a") as fh:
            for r in rows:
                fh.write(json.dumps({**asdict(r), "ratio": r.ratio, "script": os.path.basename(sys.argv[0]),
                                     "quick": args.quick, "machine": machine()}) + "\n")


def random_activations(samples: int, n: int, seed: int, *, related: np.ndarray | None = None) -> np.ndarray:
    """float32 (samples, n) ReLU-like activations; with ``related`` (samples, >= n), each
    neuron follows a randomly chosen neuron of it plus noise, so best matches are meaningful."""
    rng = np.random.default_rng(seed)
    out = rng.standard_normal((samples, n), dtype=np.float32)
    if related is not None:
        pick = rng.permutation(related.shape[1])[:n]
        for start in range(0, samples, 8192):  # in blocks: no second full-size temporary
            block = out[start:start + 8192]
            block *= 0.5
            block += related[start:start + 8192, pick]
    np.maximum(out, 0.0, out=out)
    return out
