"""The benchmark harness's fairness rules (benchmarks/harness.py, benchmarks/metrics_round2.py):
who goes first alternates, and each side's kernel costs are counted apart."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = str(Path(__file__).resolve().parents[1] / "benchmarks")
sys.path.insert(0, BENCHMARKS)  # the scripts import harness as a top-level module
try:
    harness = importlib.import_module("harness")
    metrics_round2 = importlib.import_module("metrics_round2")
finally:
    sys.path.remove(BENCHMARKS)  # the other scripts' names (scaling, hungarian) must not shadow anything


def recorder(order: list[str]) -> dict[str, object]:
    return {name: (lambda name=name: order.append(name)) for name in ("reference", "neurocorr")}


@pytest.mark.parametrize("interleaved", [harness.interleaved, metrics_round2.interleaved],
                         ids=["harness", "metrics_round2"])
def test_who_goes_first_alternates(interleaved: object) -> None:
    order: list[str] = []
    interleaved(recorder(order), 4)  # type: ignore[operator]
    assert order == ["reference", "neurocorr", "neurocorr", "reference"] * 2


def test_metrics_round2_times_every_run_of_each_side() -> None:
    wall, cpu = metrics_round2.interleaved(recorder([]), 3)
    assert [len(v) for v in (*wall.values(), *cpu.values())] == [3, 3, 3, 3]
    assert min(min(v) for v in wall.values()) >= 0.0


def test_kernel_costs_counts_each_side_apart() -> None:
    def touches_fresh_memory() -> float:
        return float(np.ones(1 << 24).sum())  # 128 MB written for the first time

    runs, totals = harness.kernel_costs({"reference": lambda: None, "neurocorr": touches_fresh_memory})
    assert runs["neurocorr"]() == float(1 << 24)  # the wrapped call's result comes back
    runs["reference"]()
    assert totals["neurocorr"][1] > 0  # minor page faults of the fresh pages
    assert totals["reference"][1] < totals["neurocorr"][1]
    assert all(seconds >= 0.0 for seconds, _ in totals.values())
