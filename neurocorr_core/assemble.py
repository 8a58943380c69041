"""The :class:`Comparison` a user reads, made from a finished plan (compare() and grid() alike)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .pipeline import Outcome, Plan, Side
from .result import Comparison, LayerResult, Significance
from .sampling import sampled_sizes
from .score import Directional


def make_comparison(plan: Plan, outcome: Outcome, *, config: dict[str, Any], versions: Mapping[str, str],
                    significance: Significance | None = None) -> Comparison:
    """The comparison of ``plan``'s two sides: per-neuron partners and values over all neurons
    (NaN for neurons not sampled), per-layer results, the run's ``config`` and the plugins'
    ``versions``."""
    layer_level = plan.metric_cls.level != "neuron"
    partner_a, value_a = _expand(outcome.ab, plan.sampled_a, sum(plan.a.sizes))
    partner_b, value_b = _expand(outcome.ba, plan.sampled_b, sum(plan.b.sizes))
    return Comparison(
        model_a=plan.a.label, model_b=plan.b.label, samples=plan.samples,
        score=outcome.score,
        layers_a=_layer_results(plan.a, outcome.dead_a, value_a, plan.sampled_a, layer_level),
        layers_b=_layer_results(plan.b, outcome.dead_b, value_b, plan.sampled_b, layer_level),
        layer_table=outcome.ab.table, layer_table_ba=outcome.ba.table,
        partner_a=partner_a, partner_b=partner_b, value_a=value_a, value_b=value_b,
        config=config, versions=dict(versions),
        matched_fraction={"a_to_b": _matched(outcome.ab.partner), "b_to_a": _matched(outcome.ba.partner)},
        standard_error=outcome.standard_error, significance=significance,
    )


def _expand(direction: Directional, sampled: np.ndarray | None, total: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron partner and value over all neurons: -1 and NaN for neurons not sampled."""
    if sampled is None:
        return direction.partner, direction.value
    partner, value = np.full(total, -1, dtype=np.int64), np.full(total, np.nan)
    partner[sampled], value[sampled] = direction.partner, direction.value
    return partner, value


def _matched(partner: np.ndarray) -> float:
    return float(np.mean(partner >= 0)) if len(partner) else 0.0


def _layer_results(side: Side, dead: np.ndarray, values: np.ndarray, sampled: np.ndarray | None,
                   layer_level: bool) -> list[LayerResult]:
    bounds = np.cumsum([0, *side.sizes])
    counts = None if sampled is None else sampled_sizes(side.sizes, sampled)
    if len(dead) != bounds[-1]:  # a layer-level metric that reports no neuron masks
        dead = np.zeros(int(bounds[-1]), dtype=bool)
    out = []
    for i, layer in enumerate(side.layers):
        if layer_level:
            score = float(values[i])
        else:
            part = values[bounds[i]:bounds[i + 1]]
            score = float(np.nanmean(part)) if np.isfinite(part).any() else float("nan")
        out.append(LayerResult(layer, i, side.sizes[i], int(dead[bounds[i]:bounds[i + 1]].sum()), score,
                               None if counts is None else counts[i]))
    return out
