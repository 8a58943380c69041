"""Pearson all pairs against the seed paper's way: one ``torch.corrcoef`` per pair of neurons.

The paper's code loops over every neuron of A and every neuron of B in Python and calls
torch.corrcoef on the two columns. For 300 x 300 neurons that is 90,000 calls; the loop is
timed on the first rows of A (every column of B) and extrapolated linearly to all rows (each
row costs the same), which the output says. neurocorr computes all 300 x 300 pairs and the
max matching. Sizes: 10 samples (the paper's FC-vs-CNN probe), 1,000, and 10,000 (its
FC-vs-FC probe, the MNIST test split). The loop's r values for the timed rows are checked against neurocorr's.

    python benchmarks/paper_loop.py [--quick]
"""

from __future__ import annotations

import time
from functools import partial

import numpy as np
from harness import Row, cli, finish, header, interleaved, median, random_activations, torch_threads

from neurocorr_core.matching import MaxMatching
from neurocorr_core.score import full_directions
from neurocorr_pearson import Pearson


def paper_loop(a: object, b: object, rows: int) -> np.ndarray:
    """r for the first ``rows`` neurons of A against every neuron of B, pair by pair."""
    import torch

    assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
    out = np.zeros((rows, b.shape[1]))
    for i in range(rows):
        for j in range(b.shape[1]):
            out[i, j] = float(torch.corrcoef(torch.stack([a[:, i], b[:, j]]))[0, 1])
    return out


def neurocorr(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    metric = Pearson([x.shape[1]], [y.shape[1]])
    metric.update(x, y)
    r = metric.compute()
    ab, _ = full_directions(r, [x.shape[1]], [y.shape[1]], MaxMatching(), "none", True)
    return r, ab.score


def main() -> None:
    args = cli(__doc__ or "")
    import torch

    torch_threads()
    n = 300
    timed_rows = 5 if args.quick else 10
    repeats = args.repeats or (3 if args.quick else 5)
    rows = []
    # 10 samples: the paper's FC-vs-CNN probe; 10,000: its FC-vs-FC probe (the MNIST test split)
    for samples in (10, 1000, 10_000):
        header(f"Pearson all pairs vs a per-pair torch.corrcoef loop: {n} x {n} neurons, {samples} samples")
        x = random_activations(samples, n, 4)
        y = random_activations(samples, n, 5, related=x)
        a, b = torch.from_numpy(x), torch.from_numpy(y)
        start = time.perf_counter()
        looped = paper_loop(a, b, timed_rows)
        loop_s = (time.perf_counter() - start) * n / timed_rows
        times = interleaved({"neurocorr": partial(neurocorr, x, y)}, repeats)
        ours = median(times["neurocorr"])
        r, _ = neurocorr(x, y)
        ok = np.isfinite(looped) & np.isfinite(r[:timed_rows])
        gap = float(np.max(np.abs(r[:timed_rows] - looped)[ok]))
        rows.append(Row("pearson vs paper's per-pair loop", f"{n}x{n} neurons, {samples} samples", ours,
                        "torch.corrcoef per pair (extrap.)", loop_s, "report (expect > 1000x)", None, None,
                        f"speedup {loop_s / ours:,.0f}x; loop timed on {timed_rows} of {n} rows "
                        f"({timed_rows * n:,} pairs) and extrapolated x{n / timed_rows:g}; "
                        f"max |r - r_loop| = {gap:.1e} (pairs defined in both)", times))
    finish(args, rows)


if __name__ == "__main__":
    main()
