"""Scaling: neurocorr's time grows linearly with the number of samples and with n * m.

Pearson all pairs + max matching, streamed in batches of 1,024. Two series, each point the
median of the repeats, printed with its time per sample (or per pair) so that linear growth
shows as a flat last column: samples doubling at 1,024 x 1,024 neurons, and n * m doubling
(one side's width doubling) at 8,192 samples. The bare float32 GEMM of the same data is
timed beside each point.

    python benchmarks/scaling.py [--quick]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from harness import Row, cli, finish, header, interleaved, median, random_activations
from pearson_gemm import neurocorr_score


def point(samples: int, n: int, m: int, repeats: int) -> tuple[float, float]:
    x = random_activations(samples, n, 12)
    y = random_activations(samples, m, 13, related=x if m <= n else None)
    runs = {"reference": lambda: x.T @ y, "neurocorr": lambda: neurocorr_score(x, y, 1024)}
    times = interleaved(runs, repeats)
    return median(times["neurocorr"]), median(times["reference"])


def line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares line y = a + b x through the points: a, b and the largest relative
    residual (small when time is linear in x, with a fixed cost a)."""
    b, a = np.polyfit(xs, ys, 1)
    worst = max(abs(y - (a + b * x)) / y for x, y in zip(xs, ys, strict=True))
    return float(a), float(b), float(worst)


def main() -> None:
    args = cli(__doc__ or "")
    repeats = args.repeats or (1 if args.quick else 3)
    sample_series = [4096, 8192, 16384] if args.quick else [8192, 16384, 32768, 65536]
    width_series = [512, 1024, 2048] if args.quick else [1024, 2048, 4096, 8192]
    rows = []
    header(f"scaling with samples: 1024 x 1024 neurons, samples {sample_series}")
    ours = []
    for samples in sample_series:
        t, g = point(samples, 1024, 1024, repeats)
        ours.append(t)
        rows.append(Row("scaling: samples", f"1024x1024, {samples} samples", t, "float32 GEMM", g, "linear",
                        None, note=f"{t / samples * 1e6:.2f} us per sample"))
    a_s, b_s, worst_s = line(sample_series, ours)
    header(f"scaling with n*m: 2048 x m neurons, 8192 samples, m in {width_series}")
    ours = []
    for m in width_series:
        t, g = point(8192, 2048, m, repeats)
        ours.append(t)
        rows.append(Row("scaling: n*m", f"2048x{m}, 8192 samples", t, "float32 GEMM", g, "linear", None,
                        note=f"{t / (2048 * m) * 1e9:.2f} ns per pair"))
    a_w, b_w, worst_w = line([2048.0 * m for m in width_series], ours)
    rows.append(Row("scaling: linear fits", "t = a + b x", 0.0, "-", 0.0, "residuals <= 10%",
                    max(worst_s, worst_w) <= 0.10,
                    note=f"samples: a = {a_s:.3f} s, b = {b_s * 1e6:.2f} us/sample, worst residual "
                    f"{worst_s:.1%}; n*m: a = {a_w:.3f} s, b = {b_w * 1e9:.2f} ns/pair, worst residual "
                    f"{worst_w:.1%}"))
    finish(args, rows)


if __name__ == "__main__":
    main()
