"""Peak memory of ``neurocorr extract`` on a wide layer: 20,000 probe samples through a PyTorch
Linear(64, 4096) + ReLU, both layers written (2 x 328 MB of float32), as an .npz and as a folder.

    python benchmarks/extract_memory.py [--samples 20000] [--width 4096]

Each export runs as its own ``neurocorr extract`` process under a small parent that reads its peak
resident memory from ``getrusage(RUSAGE_CHILDREN)`` once it exits (the command alone, not this script). Target: under
1.5 GB, about what torch itself holds plus batches, while the output is 656 MB. The output is
then read back with the arrays provider and checked against a direct forward pass.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_BYTES = 1.5 * 2**30
MODEL = """
import torch
def net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, {width}), torch.nn.ReLU())
"""


#: Runs a command and prints its peak RSS (KiB), so that each export is measured on its own.
PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def run_extract(folder: Path, out: str) -> tuple[float, float]:
    """Seconds and peak RSS (bytes) of one ``neurocorr extract`` process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "neurocorr_core.cli", "extract",
                           "bench_model:net", "--probe", "probe.npy", "--layers", "*", "--out", out],
                          cwd=folder, env=env, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return seconds, float(done.stdout.split()[-1]) * 1024  # KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--width", type=int, default=4096)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "bench_model.py").write_text(MODEL.format(width=args.width))
        probe = np.random.default_rng(0).normal(size=(args.samples, 64)).astype(np.float32)
        np.save(folder / "probe.npy", probe)
        output = 2 * args.samples * args.width * 4
        print(f"extract {args.samples} samples x 2 layers of {args.width}: {output / 2**20:.0f} MB of output")
        worst = 0.0
        for out in ("feats.npz", "feats"):
            seconds, peak = run_extract(folder, out)
            worst = max(worst, peak)
            print(f"  --out {out:<10} {seconds:6.1f} s   peak RSS of the command {peak / 2**20:7.0f} MB")
        check(folder, probe)
    verdict = "OK" if worst < TARGET_BYTES else "OVER"
    print(f"peak {worst / 2**30:.2f} GB (target < {TARGET_BYTES / 2**30:.1f} GB): {verdict}")
    return 0 if worst < TARGET_BYTES else 1


def check(folder: Path, probe: np.ndarray) -> None:
    """The exported rows equal a direct forward pass (on the first and last 500 samples)."""
    import torch

    sys.path.insert(0, str(folder))
    from bench_model import net  # type: ignore[import-not-found]

    from neurocorr_core import open_model

    with torch.no_grad():
        model = net()
        for rows in (slice(0, 500), slice(-500, None)):
            want = model(torch.from_numpy(probe[rows])).numpy()
            for out in ("feats.npz", "feats"):
                prov = open_model(folder / out)
                name = prov.layers(None)[-1].name
                idx = np.arange(len(probe))[rows].astype(np.float32)[:, None]
                got = next(prov.activations([idx], [name]))[name]
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    print("  exported rows equal a direct forward pass")


if __name__ == "__main__":
    raise SystemExit(main())
