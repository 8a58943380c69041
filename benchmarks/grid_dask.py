"""A 6-model grid on a 2-worker Dask LocalCluster beside the same grid run locally, one task after
another: wall times side by side, and the score matrices compared entry by entry.

The models are six small PyTorch CNNs (different seeds) saved as TorchScript files, so they
travel to the workers as paths; the probe is scikit-learn's 1,797 digits; neurons are every
position of the conv blocks (the paper's view), 3,136 per model. Both runs use the same shards
(one per worker) and, like the workers, one BLAS thread per task (a float32 GEMM's rounding can
depend on its thread count), so the score matrices must be identical::

    python benchmarks/grid_dask.py [--workers 2] [--shards 2] [--samples 1797]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def build(seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10))


def save_models(folder: Path, count: int) -> list[Path]:
    import torch

    paths = []
    for seed in range(count):
        path = folder / f"cnn{seed}.pt"
        torch.jit.save(torch.jit.script(build(seed).eval()), str(path))
        paths.append(path)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--shards", type=int, help="default: one per worker")
    p.add_argument("--samples", type=int, default=1797, help="probe: the first N digits")
    p.add_argument("--models", type=int, default=6)
    args = p.parse_args()
    shards = args.shards or args.workers

    from neurocorr_core import load_probe
    from neurocorr_dask import DaskExecutor
    from neurocorr_scale.executor import LocalExecutor
    from neurocorr_scale.grid import GridConfig, GridModel, grid

    probe = load_probe("digits", limit=args.samples)
    config = GridConfig(neurons="position")
    with tempfile.TemporaryDirectory() as tmp:
        models = [GridModel(path.stem, str(path)) for path in save_models(Path(tmp), args.models)]
        local = grid(models, probe, config=config, shards=shards, executor=LocalExecutor(threads=1))
        start = time.perf_counter()
        with DaskExecutor(workers=args.workers) as cluster:
            started = time.perf_counter() - start
            dask = grid(models, probe, config=config, shards=shards, executor=cluster)
    neurons = sum(lr.neurons for lr in next(iter(local.comparisons.values())).layers_a)
    pairs = len(local.computed)
    print(f"{args.models} models ({neurons} neurons each, position view), {pairs} pairs, probe {probe.name} "
          f"({len(probe)} samples), {shards} shard(s)")
    print(f"{'executor':<46} {'wall s':>8} {'s / pair':>9}")
    print(f"{'local, one task after another, 1 BLAS thread':<46} {local.seconds:8.2f} "
          f"{local.seconds / pairs:9.3f}")
    print(f"{dask.executor:<46} {dask.seconds:8.2f} {dask.seconds / pairs:9.3f}   "
          f"(+ {started:.1f} s to start the cluster)")
    print(f"speed-up {local.seconds / dask.seconds:.2f}x on {os.cpu_count()} cores, load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())} (1, 5, 15 min) at the end")
    diff = np.nanmax(np.abs(dask.scores - local.scores))
    same = np.array_equal(np.isnan(dask.scores), np.isnan(local.scores))
    verdict = "identical" if diff == 0 and same else "within 1e-9" if diff <= 1e-9 and same else "DIFFERENT"
    print(f"largest difference between the score matrices: {diff:.3g} ({verdict})")
    print("symmetric scores:")
    print(np.array2string(local.symmetric, precision=4, suppress_small=True))


if __name__ == "__main__":
    main()
