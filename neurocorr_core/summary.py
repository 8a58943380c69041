"""The plain-text summary of a comparison that ``compare`` and ``run`` print (and
``Comparison.summary()`` returns), with the sentence that says when dead neurons cap the score.

Typed by what it reads (:class:`Result`), so that :mod:`neurocorr_core.result` can call it without
an import circle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


class Layer(Protocol):
    """What the summary reads of a :class:`~neurocorr_core.result.LayerResult`."""

    index: int
    neurons: int
    dead: int


def highest_reachable(rows: Sequence[Layer], columns: Sequence[Layer], penalty: str) -> float:
    """The network score rows -> columns if every live pair of neurons correlated perfectly.

    From the score formula (:mod:`neurocorr_core.score`): a constant row neuron scores 0; a live one
    at most ``1 / (|d(i) - d(j)| + 1)`` for the nearest layer ``j`` of the columns holding a live
    neuron (1 without depth penalty, 0 if no column neuron is live); the score is the mean over all
    rows. Exact for ``max`` matching; an upper bound for one-to-one or mutual matchings."""
    live = [c.index for c in columns if c.neurons > c.dead]
    total = sum(r.neurons for r in rows)
    if not total or not live:
        return 0.0
    best = [max(1.0 / (abs(r.index - j) + 1) if penalty == "paper" else 1.0 for j in live) for r in rows]
    return sum((r.neurons - r.dead) * b for r, b in zip(rows, best, strict=True)) / total


def dead_sentences(result: Any) -> list[str]:
    """One sentence per side whose constant neurons cap its score, e.g. "34 of 64 neurons of A are
    constant on this probe and score 0: the highest reachable score A->B is 0.66" (neuron-level
    metrics over all neurons; none when no neuron is constant)."""
    if result.standard_error or result.config.get("constant_neurons") == "error":
        return []  # sampled neurons: the score is an estimate, and so would the bound be
    if len(result.value_a) != sum(lr.neurons for lr in result.layers_a):
        return []  # a layer-level metric: constant neurons do not score 0 one by one
    out = []
    penalty = result.config.get("depth_penalty", "paper")
    for tag, other, rows, cols in (("A", "B", result.layers_a, result.layers_b),
                                   ("B", "A", result.layers_b, result.layers_a)):
        dead, total = sum(lr.dead for lr in rows), sum(lr.neurons for lr in rows)
        if dead:
            out.append(f"{dead} of {total} neurons of {tag} are constant on this probe and score 0: the highest "
                       f"reachable score {tag}->{other} is {highest_reachable(rows, cols, penalty):.2f}")
    return out


def summary(result: Any) -> str:
    """A plain-text report of a :class:`~neurocorr_core.result.Comparison`: the network score, then
    each selected layer."""
    own = layer_level(result)
    if own is not None:
        return "\n".join(own)
    s = result.score
    lines = [f"A: {result.model_a}", f"B: {result.model_b}",
             f"probe: {result.config.get('probe')} ({result.samples} samples), "
             f"metric {result.config.get('metric')}, matching {result.config.get('matching')}, "
             f"neurons {result.config.get('neurons')}, depth penalty {result.config.get('depth_penalty')}",
             f"score A->B {s.a_to_b:.4f}   B->A {s.b_to_a:.4f}   symmetric {s.symmetric:.4f}"]
    lines += [*_extras(result), *dead_sentences(result), ""]
    for tag, layers in (("A", result.layers_a), ("B", result.layers_b)):
        lines.append(f"{tag} layer{'':<25} neurons  dead  best-match score")
        lines += [f"  {lr.info.name:<29} {lr.neurons:>7} {lr.dead:>5}  {lr.score:.4f}" for lr in layers]
    return "\n".join(lines)


def layer_level(result: Any) -> list[str] | None:
    """A layer-level metric's (CKA's) summary in its own words: the layer x layer matrix of the
    metric (one when it is symmetric) and how the network score is read from it; None for a
    neuron-level metric (each neuron has its own term of the score)."""
    if len(result.value_a) == sum(lr.neurons for lr in result.layers_a):
        return None
    cfg, s = result.config, result.score
    metric, paper = cfg.get("metric"), cfg.get("depth_penalty") == "paper"
    lines = [f"A: {result.model_a}", f"B: {result.model_b}",
             f"probe: {cfg.get('probe')} ({result.samples} samples), metric {metric} (one value per pair of "
             f"layers), neurons {cfg.get('neurons')}, depth penalty {cfg.get('depth_penalty')}",
             f"score A->B {s.a_to_b:.4f}   B->A {s.b_to_a:.4f}   symmetric {s.symmetric:.4f}",
             f"  (A->B: each layer of A takes its highest {metric} with a layer of B"
             + (", divided by 1 + their distance in depth" if paper else "") + "; the mean over A's layers)",
             *_extras(result), ""]
    names_a, names_b = [lr.info.name for lr in result.layers_a], [lr.info.name for lr in result.layers_b]
    ab, ba = np.asarray(result.layer_table, dtype=float), np.asarray(result.layer_table_ba, dtype=float)
    same = ba.shape == ab.T.shape and bool(np.allclose(ba, ab.T, atol=1e-6, equal_nan=True))
    title = f"{metric} of A's layers (rows) and B's layers (columns)"
    lines += _matrix(title + (f"; {metric} is symmetric, B->A is this matrix transposed:" if same else ":"),
                     ab, names_a, names_b)
    if not same:
        lines += ["", *_matrix(f"{metric} of B's layers (rows) and A's layers (columns):", ba, names_b, names_a)]
    return lines


def _matrix(title: str, table: np.ndarray, rows: Sequence[str], cols: Sequence[str]) -> list[str]:
    """A titled text matrix; past 12 columns, each row's highest value and its column instead."""
    rows = [r if len(r) <= 30 else r[:14] + "…" + r[-15:] for r in rows]
    left = max(len(r) for r in rows) if rows else 0
    if len(cols) > 12:
        best = [int(np.nanargmax(row)) if np.isfinite(row).any() else 0 for row in table]
        return [title.rstrip(":") + " (highest per row):",
                *(f"  {r:<{left}}  {cols[j]:<30} {table[i, j]:.4f}"
                  for i, (r, j) in enumerate(zip(rows, best, strict=True)))]
    cols = [c if len(c) <= 10 else c[:4] + "…" + c[-5:] for c in cols]
    return [title, f"  {'':<{left}}" + "".join(f" {c:>10}" for c in cols),
            *(f"  {r:<{left}}" + "".join(f" {v:>10.4f}" for v in table[i]) for i, r in enumerate(rows))]


def _extras(result: Any) -> list[str]:
    """Standard error, matched fraction, significance and tiles, when the result has them."""
    lines = []
    if result.standard_error:
        se = result.standard_error
        sampling = result.config.get("sampling", {})
        lines.append(f"standard error (sampled neurons: {sampling.get('sampled_a')} of A, "
                     f"{sampling.get('sampled_b')} of B)  A->B {se['a_to_b']:.4f}   B->A {se['b_to_a']:.4f}   "
                     f"symmetric {se['symmetric']:.4f}")
    matched = result.matched_fraction
    if matched and min(matched.values()) < 1:
        lines.append(f"matched fraction  A->B {matched['a_to_b']:.3f}   B->A {matched['b_to_a']:.3f}")
    sig = result.significance
    if sig is not None and sig.permutations:
        z = "n/a" if sig.z is None or not np.isfinite(sig.z) else f"{sig.z:.2f}"
        lines.append(f"permutation null ({sig.permutations} shuffles of B's probe order): mean "
                     f"{sig.null_mean:.4f}, z {z}, p {sig.p_value:.4g}")
    if sig is not None and sig.ci is not None:
        basic = sig.ci_basic or sig.ci
        lines.append(f"bootstrap {sig.confidence:.0%} interval ({sig.bootstrap} resamples): percentile "
                     f"[{sig.ci[0]:.4f}, {sig.ci[1]:.4f}], basic [{basic[0]:.4f}, {basic[1]:.4f}], "
                     f"bias {sig.bootstrap_bias or 0:+.4f}")
    tiles = result.config.get("tiles")
    if tiles:
        count = sum(t["count"] for t in tiles.values())
        lines.append(f"computed in {count} tiles under the memory budget {result.config.get('memory_budget')} bytes")
    ran = result.config.get("executor")
    if ran:  # see docs/scale-out.md
        cache = f", activation cache {ran['cache']}" if ran.get("cache") else ""
        lines.append(f"ran on {ran['executor']} in {ran['shards']} probe shard(s){cache}")
    return lines
