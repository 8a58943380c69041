"""Peak memory of one comparison at 10,000 and at 100,000 probe samples, side by side.

The Pearson statistics are streamed (n, means and centred co-moments merged per batch), so
memory should not grow with the number of samples. Each size runs in its own process;
we print the peak resident set size (ru_maxrss, everything: Python, torch, numpy) and the
peak of numpy/Python allocations seen by tracemalloc during compare(), and their ratios.

    python benchmarks/streaming_memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time, tracemalloc
import numpy as np, torch
from neurocorr_core import compare
torch.manual_seed(0)
def mlp():
    return torch.nn.Sequential(torch.nn.Linear(16, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU())
a, b = mlp(), mlp()
probe = np.load(sys.argv[1], mmap_mode="r")
tracemalloc.start()
t = time.perf_counter()
result = compare(a, b, probe, batch_size=1024)
seconds = time.perf_counter() - t
_, traced = tracemalloc.get_traced_memory()
print(json.dumps({"samples": len(probe), "seconds": seconds, "traced_peak": traced,
                  "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "score": result.score.symmetric}))
"""


def measure(samples: int, folder: str) -> dict[str, float]:
    path = f"{folder}/probe-{samples}.npy"
    import numpy as np

    np.save(path, np.random.default_rng(1).normal(size=(samples, 16)).astype(np.float32))
    out = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        small, large = measure(10_000, folder), measure(100_000, folder)
    mb = 1024 * 1024
    print("two MLPs 16->512->512, 1,024 + 1,024 ReLU neurons, Pearson + max, batch 1,024")
    print(f"{'samples':>8} {'seconds':>8} {'peak RSS MB':>12} {'traced peak MB':>15}")
    for row in (small, large):
        print(f"{row['samples']:>8} {row['seconds']:>8.2f} {row['rss_peak'] / mb:>12.1f} "
              f"{row['traced_peak'] / mb:>15.1f}")
    print(f"ratio 100k/10k: peak RSS {large['rss_peak'] / small['rss_peak']:.3f}, "
          f"traced peak {large['traced_peak'] / small['traced_peak']:.3f} (goal: within 1.10)")


if __name__ == "__main__":
    main()
