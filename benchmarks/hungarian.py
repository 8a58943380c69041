"""``hungarian`` matching (optimal one-to-one assignment) on a 4,096 x 4,096 similarity.

The similarity is |r| of two layers (Pearson over 2,000 samples), as compare() hands it to
the matching: related layers (each neuron of B follows one of A), and unrelated ones, where
every |r| is small and the assignment is harder to find. neurocorr's HungarianMatching
checks the scores and calls SciPy's linear_sum_assignment; the reference is that SciPy call
alone on the same matrix, and the totals of the two assignments are printed side by side.

    python benchmarks/hungarian.py [--quick]
"""

from __future__ import annotations

import numpy as np
from harness import Row, cli, finish, header, interleaved, median, peak_added, random_activations

from neurocorr_core.interfaces import Match
from neurocorr_core.matching import HungarianMatching
from neurocorr_core.score import similarity_scores
from neurocorr_pearson import Pearson


def similarity(n: int, samples: int, related: bool) -> np.ndarray:
    x = random_activations(samples, n, 10)
    y = random_activations(samples, n, 11, related=x if related else None)
    metric = Pearson([n], [n])
    metric.update(x, y)
    return similarity_scores(metric.compute(), absolute=True)


def main() -> None:
    args = cli(__doc__ or "")
    from scipy.optimize import linear_sum_assignment

    n = 1024 if args.quick else 4096
    repeats = args.repeats or 3
    rows = []
    for related in (True, False):
        kind = "related layers" if related else "unrelated layers (harder)"
        header(f"hungarian matching: {n} x {n}, {kind}")
        scores = similarity(n, 2000, related)

        def ours(scores: np.ndarray = scores) -> object:
            return HungarianMatching().match(scores)

        def ref(scores: np.ndarray = scores) -> object:
            return linear_sum_assignment(scores, maximize=True)

        match, peak = peak_added(ours)
        assert isinstance(match, Match)
        times = interleaved({"reference": ref, "neurocorr": ours}, repeats)
        t_ours, t_ref = median(times["neurocorr"]), median(times["reference"])
        rows_, cols_ = linear_sum_assignment(scores, maximize=True)
        optimum = float(scores[rows_, cols_].sum())
        rows.append(Row("hungarian", f"{n}x{n} abs(r), {kind}", t_ours, "scipy linear_sum_assignment", t_ref,
                        "neurocorr <= 2 s", t_ours <= 2.0, peak, f"total {match.score.sum():.3f} = SciPy's "
                        f"optimum {optimum:.3f}; {int((match.partner >= 0).sum())} rows matched", times))
    finish(args, rows)


if __name__ == "__main__":
    main()
