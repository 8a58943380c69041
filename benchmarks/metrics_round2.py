"""Metrics round 2 (issue 18): three cases, each beside its floor or peer, printed side by side.

1. linear CKA, one layer pair (2,048 x 2,048 neurons; 10,000 and 50,000 samples): the ``cka``
   metric fed in batches of 1,024, against the hand-written numpy floor (centre, three float32
   GEMMs X^T Y, X^T X, Y^T Y, norms). Target <= 1.1x.
2. the whole command line, Pearson + max: ``neurocorr compare A B --probe P.npy`` in a new
   process (start-up included) on two torch MLPs of 2 x 2,048 ReLU units (4,096 neurons each
   side) over 50,000 samples, against the two bare forward passes (torch, no_grad, the same
   batches) plus the bare float32 GEMM X^T Y of their activations, in this process. Target
   <= 1.3x.
3. small models: two torch MLPs (784-512-256-128-10), 10,000 inputs, linear CKA for the 3 x 3
   ReLU layer pairs: neurocorr's ``compare(..., metric="cka")`` (the exact full-sample
   estimator) against torch-cka's ``CKA(...).compare(loader)`` (its per-batch unbiased
   estimate; ``pip install --no-deps torch-cka==0.21`` - it also imports tqdm and matplotlib),
   both with batches of 256. Without torch-cka installed the reference is its algorithm
   written out here (``torch_cka_like``). Target <= 1.0x.
4. start-up (``--only startup``): ``neurocorr compare A B --probe P.npy`` (Pearson + max, the
   defaults) on two small torch MLPs (784-512-256-128-10) over 3,000 samples, a new process
   each time, wall clock including Python start-up. Target: under 1.5 s. Beside it, its floor
   in a new process too: Python, ``import torch``, building both models, loading the probe and
   the two bare forward passes (what any tool must do), and ``python -c "import torch"`` alone.
   Byte code is cached as Python does by default, whatever PYTHONDONTWRITEBYTECODE says here
   (``child_env``).

Every pair runs interleaved, who goes first alternating (reference, neurocorr, neurocorr,
reference, ...), and the median of the paired ratios is printed with each side's peak memory
(resident high-water mark added by the run; for the command line, the whole process's
high-water mark, torch and the models included). Beside the wall-clock ratio each row prints
the CPU-time ratio (``time.process_time()`` of this process plus the user + system time of the
child processes each run waited for, all threads, BLAS threads as configured): on a machine
shared with other work, wall time measures the others' load as much as the code, CPU time much
less so. Both are medians of paired ratios, with the lowest and highest paired ratio in
brackets.

    python benchmarks/metrics_round2.py [--quick] [--only cka,cli,small,startup] [--repeats N]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from harness import Row, alternating, cli, finish, header, median, paired_ratio, peak_added, random_activations

HERE = Path(__file__).resolve().parent
#: (input width, hidden widths) of the command-line case's MLPs, from the environment so that
#: the child process builds the same models (``metrics_round2:wide_a``).
WIDE = (512, (2048, 2048))


def cpu_seconds() -> float:
    """CPU seconds of this process (all threads) plus those of the children it waited for."""
    import resource

    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def interleaved(runs: dict[str, Any], repeats: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """harness.interleaved that also records CPU seconds: (wall times, CPU times) per name,
    who goes first alternating as there."""
    import gc

    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(repeats):
        for name in alternating(runs, repeat):
            fn = runs[name]
            gc.collect()
            start, start_cpu = time.perf_counter(), cpu_seconds()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(cpu_seconds() - start_cpu)
    return wall, cpu


def ratios(wall: dict[str, list[float]], cpu: dict[str, list[float]]) -> str:
    """'wall 1.05 (0.98-1.20); CPU 1.02 (0.99-1.04)': medians of the paired ratios and their spread."""
    def one(times: dict[str, list[float]]) -> str:
        paired = [a / b for a, b in zip(times["neurocorr"], times["reference"], strict=True)]
        return f"{median(paired):.3f} ({min(paired):.2f}-{max(paired):.2f})"

    return (f"ratio wall {one(wall)}; CPU {one(cpu)} (CPU s neurocorr {median(cpu['neurocorr']):.2f}, "
            f"reference {median(cpu['reference']):.2f})")


def child_env() -> dict[str, str]:
    """The environment of the new processes: this folder importable, and byte code cached as
    Python does by default (the warm-up run writes it). Some sandboxes set
    PYTHONDONTWRITEBYTECODE, which makes every process compile neurocorr from source (0.1 s)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}


# -- case 1: linear CKA against the three-GEMM floor -------------------------------------
def numpy_floor(x: np.ndarray, y: np.ndarray) -> float:
    """Feature-space linear CKA by hand: centre, three float32 GEMMs, norms."""
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    cross = np.linalg.norm(xc.T @ yc) ** 2
    return float(cross / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)))


def neurocorr_linear(x: np.ndarray, y: np.ndarray, batch: int = 1024) -> float:
    from neurocorr_cka import LinearCka

    metric = LinearCka([x.shape[1]], [y.shape[1]])
    for start in range(0, len(x), batch):
        metric.update(x[start:start + batch], y[start:start + batch])
    return float(metric.compute()[0, 0])


def case_cka(samples: int, width: int, repeats: int) -> Row:
    x = random_activations(samples, width, 0)
    y = random_activations(samples, width, 1, related=x)
    ours, peak = peak_added(lambda: neurocorr_linear(x, y))
    floor, floor_peak = peak_added(lambda: numpy_floor(x, y))
    times, cpu = interleaved({"reference": lambda: numpy_floor(x, y),
                              "neurocorr": lambda: neurocorr_linear(x, y)}, repeats)
    ratio = paired_ratio(times)
    exact = numpy_floor(x.astype(np.float64), y.astype(np.float64))
    return Row("linear CKA vs numpy 3-GEMM floor", f"{width}x{width}, {samples} samples",
               median(times["neurocorr"]), "centre + 3 float32 GEMMs", median(times["reference"]),
               "ratio <= 1.1", ratio <= 1.1, peak,
               f"{ratios(times, cpu)}; floor peak {floor_peak:.0f} MB; |err| vs float64: neurocorr "
               f"{abs(ours - exact):.1e}, floor {abs(floor - exact):.1e}", times)


# -- case 2: the whole command line against forwards + GEMM -------------------------------
def _mlp(seed: int) -> Any:
    import torch

    torch.manual_seed(seed)
    inputs, hidden = int(os.environ.get("NC_BENCH_IN", WIDE[0])), WIDE[1]
    hidden = tuple(int(h) for h in os.environ.get("NC_BENCH_HIDDEN", ",".join(map(str, hidden))).split(","))
    layers: list[Any] = []
    for width in hidden:
        layers += [torch.nn.Linear(inputs, width), torch.nn.ReLU()]
        inputs = width
    return torch.nn.Sequential(*layers, torch.nn.Linear(inputs, 10)).eval()


def wide_a() -> Any:
    return _mlp(0)


def wide_b() -> Any:
    return _mlp(1)


def forwards_and_gemm(probe: np.ndarray, batch: int) -> None:
    """The floor of the command: both models' ReLU outputs over the probe, then X^T Y."""
    import torch

    outs = []
    for build in (wide_a, wide_b):
        model, acts = build(), []
        relus = [m for m in model if isinstance(m, torch.nn.ReLU)]
        grabbed: list[Any] = []
        hooks = [r.register_forward_hook(lambda _m, _i, out, keep=grabbed: keep.append(out)) for r in relus]
        with torch.no_grad():
            for start in range(0, len(probe), batch):
                grabbed.clear()
                model(torch.from_numpy(probe[start:start + batch]))
                acts.append(torch.cat(grabbed, 1).numpy())
        for hook in hooks:
            hook.remove()
        outs.append(np.concatenate(acts))
    _ = outs[0].T @ outs[1]


#: Runs the command line as ``python -m neurocorr_core.cli`` would and prints its own VmHWM
#: at exit: a child's ru_maxrss would count the parent's pages at the fork (gigabytes here).
_PEAK = ("import runpy, sys\nsys.argv = ['neurocorr'] + sys.argv[1:]\ntry:\n"
         "    runpy.run_module('neurocorr_core.cli', run_name='__main__')\nfinally:\n"
         "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
         "    print('PEAK', hwm[0].split()[1] if hwm else 0, file=sys.stderr)")


def run_cli(probe_path: str, env: dict[str, str]) -> float:
    """One ``neurocorr compare`` in a new process; its peak resident size in MB."""
    done = subprocess.run([sys.executable, "-c", _PEAK, "compare", "metrics_round2:wide_a",
                           "metrics_round2:wide_b", "--probe", probe_path, "--quiet"],
                          check=True, env=env, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    peaks = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("PEAK ")]
    return int(peaks[-1]) / 1e3 if peaks else float("nan")


def case_cli(samples: int, inputs: int, hidden: tuple[int, ...], repeats: int) -> Row:
    os.environ["NC_BENCH_IN"], os.environ["NC_BENCH_HIDDEN"] = str(inputs), ",".join(map(str, hidden))
    env = child_env()
    probe = np.random.default_rng(0).random((samples, inputs), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.npy")
        np.save(path, probe)
        run_cli(path, env)  # warm the file cache and the imports
        _, ref_peak = peak_added(lambda: forwards_and_gemm(probe, 256))
        times, cpu = interleaved({"reference": lambda: forwards_and_gemm(probe, 256),
                                  "neurocorr": lambda: run_cli(path, env)}, repeats)
        peak = run_cli(path, env)  # the command's own high-water mark
    ratio = paired_ratio(times)
    n = sum(hidden)
    return Row("CLI pearson+max vs forwards+GEMM", f"{n}x{n} neurons, {samples} samples",
               median(times["neurocorr"]), "2 bare forwards + X^T Y", median(times["reference"]),
               "ratio <= 1.3", ratio <= 1.3, peak,
               f"{ratios(times, cpu)}; neurocorr: a new process, start-up included (peak: the process's "
               f"VmHWM); reference in process, peak added {ref_peak:.0f} MB", times)


# -- case 3: small models against torch-cka -----------------------------------------------
def small_mlp(seed: int) -> Any:
    import torch

    torch.manual_seed(seed)
    nn = torch.nn
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                         nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)).eval()


def torch_cka_like(model_a: Any, model_b: Any, loader: Any, layers: list[str]) -> Any:
    """torch-cka 0.21's ``CKA.compare``, written out: per batch, Gram matrices with zeroed
    diagonals, the unbiased HSIC of Song et al. for every layer pair, averaged over batches."""
    import torch

    def grab(model: Any) -> tuple[dict[str, Any], list[Any]]:
        feats: dict[str, Any] = {}
        hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: feats.__setitem__(name, out))
                 for name, m in model.named_modules() if name in layers]
        return feats, hooks

    def hsic(k: Any, l: Any) -> float:  # noqa: E741
        n = k.shape[0]
        ones = torch.ones(n, 1)
        total = torch.trace(k @ l) + (ones.t() @ k @ ones @ ones.t() @ l @ ones).item() / ((n - 1) * (n - 2))
        total -= (ones.t() @ k @ l @ ones).item() * 2 / (n - 2)
        return float(total / (n * (n - 3)))

    (fa, ha), (fb, hb) = grab(model_a), grab(model_b)
    out = torch.zeros(len(layers), len(layers), 3)
    with torch.no_grad():
        for (x, *_rest) in loader:
            model_a(x)
            model_b(x)
            for i, xa in enumerate(fa.values()):
                k = xa.flatten(1) @ xa.flatten(1).t()
                k.fill_diagonal_(0.0)
                out[i, :, 0] += hsic(k, k) / len(loader)
                for j, xb in enumerate(fb.values()):
                    l = xb.flatten(1) @ xb.flatten(1).t()  # noqa: E741
                    l.fill_diagonal_(0.0)
                    out[i, j, 1] += hsic(k, l) / len(loader)
                    out[i, j, 2] += hsic(l, l) / len(loader)
    for hook in ha + hb:
        hook.remove()
    return out[:, :, 1] / (out[:, :, 0].sqrt() * out[:, :, 2].sqrt())


def case_small(samples: int, repeats: int) -> Row:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from neurocorr_core import compare

    a, b = small_mlp(0), small_mlp(1)
    probe = np.random.default_rng(0).random((samples, 784), dtype=np.float32)
    loader = DataLoader(TensorDataset(torch.from_numpy(probe)), batch_size=256)
    layers = ["1", "3", "5"]
    os.environ.setdefault("TQDM_DISABLE", "1")  # torch-cka's progress bar
    try:
        from torch_cka import CKA

        def reference() -> Any:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cka = CKA(a, b, "a", "b", model1_layers=layers, model2_layers=layers)
                cka.compare(loader)
            return cka.hsic_matrix

        name = "torch-cka 0.21 CKA.compare"
    except ImportError:
        def reference() -> Any:
            return torch_cka_like(a, b, loader, layers)

        name = "torch-cka algorithm (not installed)"

    def ours() -> Any:
        return compare(a, b, probe, metric="cka", batch_size=256).layer_table

    table, peak = peak_added(ours)
    theirs, ref_peak = peak_added(reference)
    times, cpu = interleaved({"reference": reference, "neurocorr": ours}, repeats)
    ratio = paired_ratio(times)
    gap = float(np.max(np.abs(np.asarray(table) - np.asarray(theirs))))
    return Row("small MLPs, 3x3 linear CKA", f"784-512-256-128, {samples} samples",
               median(times["neurocorr"]), name, median(times["reference"]), "ratio <= 1.0", ratio <= 1.0,
               peak, f"{ratios(times, cpu)}; reference peak {ref_peak:.0f} MB; max |neurocorr (exact) - "
               f"reference (minibatch estimate)| = {gap:.3f}", times)


# -- case 4: start-up of the command line on two small models ----------------------------
def small_a() -> Any:
    return small_mlp(0)


def small_b() -> Any:
    return small_mlp(1)


#: The floor of case 4, run as a new process: what any tool comparing these models must do.
_FLOOR = ("import sys, numpy as np, torch\nfrom metrics_round2 import small_a, small_b\n"
          "x = torch.from_numpy(np.load(sys.argv[1]))\nwith torch.no_grad():\n"
          "    for model in (small_a(), small_b()):\n"
          "        [model(x[i:i + 256]) for i in range(0, len(x), 256)]")


def timed_process(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system, all threads) of one new process."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, cwd=HERE, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def case_startup(samples: int, repeats: int) -> Row:
    env = child_env()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.npy")
        np.save(path, np.random.default_rng(0).random((samples, 784), dtype=np.float32))
        script = Path(sys.executable).with_name("neurocorr")  # the installed command, as a user runs it
        command = [str(script)] if script.exists() else [sys.executable, "-m", "neurocorr_core.cli"]
        argv = {"neurocorr": [*command, "compare", "metrics_round2:small_a",
                              "metrics_round2:small_b", "--probe", path, "--quiet"],
                "reference": [sys.executable, "-c", _FLOOR, path],
                "torch": [sys.executable, "-c", "import torch"]}
        timed_process(argv["neurocorr"], env)  # warm the file cache
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in argv}
        for _ in range(repeats):
            for name, args in argv.items():
                runs[name].append(timed_process(args, env))
    times = {name: [wall for wall, _ in got] for name, got in runs.items()}
    cpus = {name: [c for _, c in got] for name, got in runs.items()}
    cpu = {name: median(c) for name, c in cpus.items()}
    wall = median(times["neurocorr"])
    return Row("CLI start-up, 2 small MLPs", f"784-512-256-128, {samples} samples", wall,
               "new process: import torch + models + 2 bare forwards", median(times["reference"]),
               "wall <= 1.5 s", wall <= 1.5, None,
               f"{ratios(times, cpus)}; neurocorr over the floor {cpu['neurocorr'] - cpu['reference']:.2f} "
               f"CPU s (user+sys); 'import torch' alone {median(times['torch']):.2f} s wall, {cpu['torch']:.2f} s CPU",
               {"neurocorr": times["neurocorr"], "reference": times["reference"]})


def main() -> None:
    sys.argv, only = _pop_only(sys.argv)
    args = cli(__doc__ or "")
    repeats = args.repeats or (2 if args.quick else 3)
    header("metrics round 2: linear CKA floor, whole CLI, small models")
    rows: list[Row] = []
    if "cka" in only:
        for samples in ((5_000,) if args.quick else (10_000, 50_000)):
            rows.append(case_cka(samples, 1024 if args.quick else 2048, repeats))
    if "cli" in only:
        rows.append(case_cli(10_000 if args.quick else 50_000, 256 if args.quick else WIDE[0],
                             (1024, 1024) if args.quick else WIDE[1], repeats))
    if "small" in only:
        rows.append(case_small(10_000, repeats))
    if "startup" in only:
        rows.append(case_startup(3_000, max(repeats, 5)))
    finish(args, rows)


def _pop_only(argv: list[str]) -> tuple[list[str], set[str]]:
    """``--only cka,cli,small,startup`` (this script's own option; the rest go to harness.cli)."""
    only = {"cka", "cli", "small", "startup"}
    if "--only" in argv:
        i = argv.index("--only")
        only = set(argv[i + 1].split(","))
        argv = argv[:i] + argv[i + 2:]
    return argv, only


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"  (whole run {time.perf_counter() - start:.0f} s)")
