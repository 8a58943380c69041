"""Linear CKA for a grid of layers, against the GEMM floor and the Gram-matrix formulation.

10 layers x 10 layers of 1,024 features over 10,000 samples. Linear CKA needs, for every pair
of layers, |X_l^T Y_m|_F^2 and each layer's |X_l^T X_l|_F: the GEMM floor is the bare float32
products X^T Y (all layer pairs at once) and X_l^T X_l, Y_m^T Y_m, timed in the same run.
neurocorr's ``cka`` metric streams batches of 1,024 samples.

The Gram-matrix (n x n) formulation is the one of Kornblith et al. (2019)'s published code:
for each pair of layers, the float64 Gram matrices K = X_l X_l^T and L = Y_m Y_m^T, centred,
then <K, L> / (|K| |L|). It is timed on one pair and multiplied by the number of pairs (every
pair costs the same), which the output says; the note also gives the cost had the 20 centred
Grams been computed once and kept (it needs 20 x n^2 x 8 bytes).

    python benchmarks/cka_grid.py [--quick]
"""

from __future__ import annotations

import itertools
import time

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

from neurocorr_cka import LinearCka


def neurocorr_cka(x: np.ndarray, y: np.ndarray, sizes: list[int], batch: int = 1024) -> np.ndarray:
    metric = LinearCka(sizes, sizes)
    for start in range(0, len(x), batch):
        metric.update(x[start:start + batch], y[start:start + batch])
    return metric.compute()


def gemm_floor(x: np.ndarray, y: np.ndarray, sizes: list[int]) -> None:
    """The products linear CKA cannot avoid, as bare float32 GEMMs (a.T @ a is a SYRK)."""
    x.T @ y
    edges = np.cumsum([0, *sizes])
    for a, b in itertools.pairwise(edges):
        xl, ym = x[:, a:b], y[:, a:b]
        xl.T @ xl
        ym.T @ ym


def gram_linear(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return x64 @ x64.T


def centre_gram(g: np.ndarray) -> np.ndarray:
    """H G H with H = I - 11'/n, through row and column means (no n x n x n product)."""
    means = g.mean(axis=0)
    out = g - means[None, :]
    out -= (means - means.mean())[:, None]
    return out


def gram_cka(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741 - the papers' names
    kc, lc = centre_gram(k), centre_gram(l)
    return float(np.vdot(kc, lc) / (np.linalg.norm(kc) * np.linalg.norm(lc)))


def main() -> None:
    args = cli(__doc__ or "")
    layers, width, samples = (10, 256, 5000) if args.quick else (10, 1024, 10_000)
    repeats = args.repeats or 2
    sizes = [width] * layers
    header(f"linear CKA: {layers} x {layers} layers of {width} features, {samples} samples")
    x = random_activations(samples, layers * width, 6)
    y = random_activations(samples, layers * width, 7, related=x)
    table, peak = peak_added(lambda: neurocorr_cka(x, y, sizes))
    runs = {"reference": lambda: gemm_floor(x, y, sizes), "neurocorr": lambda: neurocorr_cka(x, y, sizes)}
    times = interleaved(runs, repeats)
    floor, ours = median(times["reference"]), median(times["neurocorr"])
    ratio = paired_ratio(times)
    # the Gram formulation on one pair of layers, extrapolated to all pairs
    start = time.perf_counter()
    k, l = gram_linear(x[:, :width]), gram_linear(y[:, :width])  # noqa: E741
    grams_s = time.perf_counter() - start
    start = time.perf_counter()
    one = gram_cka(k, l)
    pair_s = time.perf_counter() - start
    per_pair = layers * layers * (grams_s + pair_s)
    cached = layers * grams_s + layers * layers * pair_s
    del k, l
    flops = 2.0 * samples * (layers * width) ** 2
    rows = [
        Row("linear CKA vs GEMM floor", f"{layers}x{layers} layers x {width}, {samples} samples", ours,
            "float32 GEMMs of the same products", floor, "ratio <= 1.3", ratio <= 1.3, peak,
            f"cross GEMM alone at floor speed: {gflops(flops, floor)}; runs: floor "
            f"{[round(t, 2) for t in times['reference']]}, "
            f"neurocorr {[round(t, 2) for t in times['neurocorr']]}",
            times),
        Row("linear CKA vs Gram formulation", f"{layers}x{layers} layers x {width}, {samples} samples", ours,
            "Gram per pair, float64 (extrap.)", per_pair, "speedup >= 10", per_pair / ours >= 10, None,
            f"speedup {per_pair / ours:.0f}x; one pair timed ({grams_s:.2f} s for its 2 Grams, "
            f"{pair_s:.2f} s to centre and compare; CKA {one:.4f} vs neurocorr {table[0, 0]:.4f}) "
            f"x {layers * layers} pairs. "
            f"Had the {2 * layers} centred Grams been kept ({2 * layers * samples**2 * 8 / 1e9:.0f} GB): "
            f"{cached:.1f} s, {cached / ours:.1f}x neurocorr's time"),
    ]
    finish(args, rows)


if __name__ == "__main__":
    main()
