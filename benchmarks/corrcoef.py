"""Pearson all pairs against ``numpy.corrcoef`` on the same data, and the same values.

numpy.corrcoef of the stacked activations ``[X Y]`` (samples, n + m) gives every pair,
including the within-model blocks it does not need, in float64. neurocorr streams the
batches and computes only the cross block, with float32 GEMMs. Both see the same float32
activations; the largest |difference| of the cross block must stay under 1e-5.

    python benchmarks/corrcoef.py [--quick]
"""

from __future__ import annotations

import numpy as np
from harness import (
    Row,
    cli,
    finish,
    header,
    interleaved,
    median,
    paired_ratio,
    peak_added,
    random_activations,
)

from neurocorr_pearson import Pearson


def neurocorr_r(x: np.ndarray, y: np.ndarray, batch: int = 1024) -> np.ndarray:
    metric = Pearson([x.shape[1]], [y.shape[1]])
    for start in range(0, len(x), batch):
        metric.update(x[start:start + batch], y[start:start + batch])
    return metric.compute()


def numpy_r(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.corrcoef(x, y, rowvar=False)[:x.shape[1], x.shape[1]:]


def main() -> None:
    args = cli(__doc__ or "")
    n, samples = (512, 10_000) if args.quick else (1024, 20_000)
    repeats = args.repeats or (2 if args.quick else 3)
    header(f"Pearson vs numpy.corrcoef: {n} x {n} neurons, {samples} samples")
    x = random_activations(samples, n, 2)
    y = random_activations(samples, n, 3, related=x)
    ours, peak = peak_added(lambda: neurocorr_r(x, y))
    ref, ref_peak = peak_added(lambda: numpy_r(x, y))
    gap = float(np.max(np.abs(ours - ref)))
    times = interleaved({"reference": lambda: numpy_r(x, y), "neurocorr": lambda: neurocorr_r(x, y)}, repeats)
    t_ref, t_ours = median(times["reference"]), median(times["neurocorr"])
    speedup = 1.0 / paired_ratio(times)
    rows = [
        Row("pearson vs numpy.corrcoef", f"{n}x{n} neurons, {samples} samples", t_ours,
            "numpy.corrcoef([X Y])", t_ref, "speedup >= 3", speedup >= 3, peak,
            f"speedup {speedup:.1f}x; corrcoef peak {ref_peak:.0f} MB", times),
        Row("  same values", f"max abs(r - r_numpy) = {gap:.1e}", t_ours, "numpy.corrcoef([X Y])", t_ref,
            "max diff <= 1e-5", gap <= 1e-5),
    ]
    finish(args, rows)


if __name__ == "__main__":
    main()
