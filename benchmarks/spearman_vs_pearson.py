"""Spearman against Pearson on the same data: the price of ranks.

2,048 x 2,048 neurons over 20,000 samples, streamed in batches of 1,024. Spearman keeps the
samples (within its memory budget), ranks every neuron (average ranks for ties, by a radix
sort) and correlates the exactly centred ranks with float32 GEMMs, as Pearson does its data.
Target: at most 3x Pearson's time. A 64 x 64 block of its values is checked against
scipy.stats.spearmanr.

    python benchmarks/spearman_vs_pearson.py [--quick]
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
from neurocorr_spearman import Spearman


def run(metric_cls: type, x: np.ndarray, y: np.ndarray, batch: int = 1024) -> np.ndarray:
    metric = metric_cls([x.shape[1]], [y.shape[1]])
    try:
        for start in range(0, len(x), batch):
            metric.update(x[start:start + batch], y[start:start + batch])
        return metric.compute()
    finally:
        getattr(metric, "close", lambda: None)()


def main() -> None:
    args = cli(__doc__ or "")
    from scipy.stats import spearmanr

    n, samples = (1024, 8000) if args.quick else (2048, 20_000)
    repeats = args.repeats or (2 if args.quick else 3)
    header(f"Spearman vs Pearson: {n} x {n} neurons, {samples} samples")
    x = random_activations(samples, n, 8)
    y = random_activations(samples, n, 9, related=x)
    rho, peak = peak_added(lambda: run(Spearman, x, y))
    runs = {"reference": lambda: run(Pearson, x, y), "neurocorr": lambda: run(Spearman, x, y)}
    times = interleaved(runs, repeats)
    t_p, t_s = median(times["reference"]), median(times["neurocorr"])
    ratio = paired_ratio(times)
    rng = np.random.default_rng(0)
    pick_x, pick_y = (np.sort(rng.choice(n, 64, replace=False)) for _ in range(2))
    want = spearmanr(np.hstack([x[:, pick_x], y[:, pick_y]])).statistic[:64, 64:]
    gap = float(np.max(np.abs(rho[np.ix_(pick_x, pick_y)] - want)))
    rows = [Row("spearman vs pearson", f"{n}x{n} neurons, {samples} samples", t_s, "pearson (neurocorr)", t_p,
                "ratio <= 3", ratio <= 3, peak,
                f"max abs(rho - scipy spearmanr) on 64 x 64 random pairs = {gap:.1e} (ReLU data: many ties at 0); "
                f"runs: pearson {[round(t, 2) for t in times['reference']]}, "
                f"spearman {[round(t, 2) for t in times['neurocorr']]}", times)]
    finish(args, rows)


if __name__ == "__main__":
    main()
