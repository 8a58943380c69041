"""Pearson for every pair of neurons + ``max`` matching, against the bare float32 GEMM.

4,096 x 4,096 neurons over 50,000 samples (2 * 50,000 * 4,096^2 = 1.7 TFLOP), float32
activations streamed in batches of 1,024 into the Pearson metric, then the network score
(max matching, depth penalty) as compare() computes it. The reference is one float32 GEMM
``X^T Y`` of the same data in the same run: the floor any exact all-pairs method must pay.
Peak memory is what the neurocorr run adds to the process (the input arrays, which a real
run streams from the models, excluded).

    python benchmarks/pearson_gemm.py [--quick]
"""

from __future__ import annotations

import numpy as np
from harness import (
    Row,
    cli,
    finish,
    gflops,
    header,
    interleaved,
    median,
    paired_ratio,
    peak_added,
    random_activations,
)

from neurocorr_core.matching import MaxMatching
from neurocorr_core.score import full_directions
from neurocorr_pearson import Pearson


def neurocorr_score(x: np.ndarray, y: np.ndarray, batch: int) -> float:
    """Stream the batches through the Pearson metric, then match (what compare() does after
    the forward passes)."""
    metric = Pearson([x.shape[1]], [y.shape[1]])
    for start in range(0, len(x), batch):
        metric.update(x[start:start + batch], y[start:start + batch])
    rows, cols = full_directions(metric.compute(), [x.shape[1]], [y.shape[1]], MaxMatching(), "paper", True)
    assert cols is not None
    return 0.5 * (rows.score + cols.score)


def main() -> None:
    args = cli(__doc__ or "")
    n, samples = (2048, 16_384) if args.quick else (4096, 50_000)
    repeats = args.repeats or (2 if args.quick else 3)
    batch = 1024
    header(f"Pearson all pairs + max vs bare GEMM: {n} x {n} neurons, {samples} samples")
    x = random_activations(samples, n, 0)
    y = random_activations(samples, n, 1, related=x)
    _, peak = peak_added(lambda: neurocorr_score(x, y, batch))
    runs = {"reference": lambda: x.T @ y, "neurocorr": lambda: neurocorr_score(x, y, batch)}
    times = interleaved(runs, repeats)
    flops = 2.0 * samples * n * n
    ref, ours = median(times["reference"]), median(times["neurocorr"])
    ratio = paired_ratio(times)
    rows = [
        Row("pearson+max vs GEMM", f"{n}x{n} neurons, {samples} samples", ours, "float32 GEMM X^T Y", ref,
            "ratio <= 1.25", ratio <= 1.25, peak,
            f"GEMM {gflops(flops, ref)}; neurocorr {gflops(flops, ours)} (GEMM flops only); "
            f"batches of {batch}; runs: gemm {[round(t, 2) for t in times['reference']]}, "
            f"neurocorr {[round(t, 2) for t in times['neurocorr']]}", times),
        Row("pearson+max peak memory", f"{n}x{n} neurons, {samples} samples", ours, "-", 0.0,
            "peak <= 1500 MB", peak <= 1500, peak),
    ]
    finish(args, rows)


if __name__ == "__main__":
    main()
