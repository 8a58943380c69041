"""What the JAX provider's shared compiled captures save on repeated comparisons.

A grid cell or a ``reproduce`` seed opens a new provider for a new build of the same
architecture. Each ``compare`` below gets a fresh build of a JAX model (same architecture, other
weights) and compares it with a fixed torch model on 1,000 probe samples; pairs of compares run
one after ``neurocorr_jax.provider.clear_cache()`` (every provider traces and compiles, as before
the cache) and one with the cache warm, in alternating order; medians of the wall-clock seconds.

    python benchmarks/jax_compile_reuse.py [--repeats 11]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "integration"))

from builders_jax import build_cnn_linen, build_cnn_nnx  # noqa: E402
from builders_torch import build_cnn  # noqa: E402
from neurocorr_core import compare  # noqa: E402
from neurocorr_jax.provider import clear_cache  # noqa: E402
from reference import cnn_probe  # noqa: E402


def cases() -> dict[str, tuple[Callable[[int], Any], Any, np.ndarray]]:
    from torch import nn

    from neurocorr_paper.jax_mlp import build

    def mlp(seed: int) -> Any:
        model = build([1000, 500, 100], 784, seed)
        model.eval()
        return model

    torch_mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10)).eval()
    digits = np.random.default_rng(0).normal(size=(1000, 1, 28, 28)).astype(np.float32)
    return {"nnx CNN": (build_cnn_nnx, build_cnn(0), cnn_probe(1000)),
            "linen CNN": (build_cnn_linen, build_cnn(0), cnn_probe(1000)),
            "nnx MLP 1000-500-100": (mlp, torch_mlp, digits)}


def timed(make: Callable[[int], Any], other: Any, probe: np.ndarray, seed: int) -> float:
    model = make(seed)
    start = time.perf_counter()
    compare(model, other, probe)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    print(f"{'model':>22} {'cache cleared s':>16} {'cache warm s':>13} {'ratio':>6}   (medians of {args.repeats})")
    for name, (make, other, probe) in cases().items():
        timed(make, other, probe, 99)  # imports, torch, first compile
        cold, warm = [], []
        for r in range(args.repeats):
            for mode in ("cold", "warm") if r % 2 else ("warm", "cold"):
                if mode == "cold":
                    clear_cache()
                (cold if mode == "cold" else warm).append(timed(make, other, probe, r))
        c, w = statistics.median(cold), statistics.median(warm)
        print(f"{name:>22} {c:>16.3f} {w:>13.3f} {c / w:>6.1f}")


if __name__ == "__main__":
    main()
