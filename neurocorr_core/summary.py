"""The plain-text summary of a comparison that ``compare`` and ``run`` print."""

from __future__ import annotations

import numpy as np

from .result import Comparison


def summary(result: Comparison) -> str:
    """A plain-text report: the network score, then each selected layer."""
    s = result.score
    lines = [f"A: {result.model_a}", f"B: {result.model_b}",
             f"probe: {result.config.get('probe')} ({result.samples} samples), "
             f"metric {result.config.get('metric')}, matching {result.config.get('matching')}, "
             f"neurons {result.config.get('neurons')}, depth penalty {result.config.get('depth_penalty')}",
             f"score A->B {s.a_to_b:.4f}   B->A {s.b_to_a:.4f}   symmetric {s.symmetric:.4f}"]
    lines += [*_extras(result), ""]
    for tag, layers in (("A", result.layers_a), ("B", result.layers_b)):
        lines.append(f"{tag} layer{'':<25} neurons  dead  best-match score")
        lines += [f"  {lr.info.name:<29} {lr.neurons:>7} {lr.dead:>5}  {lr.score:.4f}" for lr in layers]
    return "\n".join(lines)


def _extras(result: Comparison) -> list[str]:
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
