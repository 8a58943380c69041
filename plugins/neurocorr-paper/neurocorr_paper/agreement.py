"""Whether MLPs trained in another framework score like the PyTorch ones.

The rule (one, stated everywhere it is reported): a framework's mean over seeds *agrees* with
torch's when the two means differ by at most twice the larger of their two seed-to-seed
standard deviations, |mean_fw - mean_torch| <= 2 * max(sd_fw, sd_torch). That asks whether the
other framework's result lies where a single further torch seed would typically land (about
95% of single runs fall within 2 sd of the mean when the noise is normal). It is not a test
that the two means are equal: with 3 seeds the means themselves are known to about sd/sqrt(3),
so the difference over its standard error (Welch's t) is reported beside the verdict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .summary import mean_sd

RULE = "|mean_fw - mean_torch| <= 2 * max(sd_fw, sd_torch) over seeds"
MEASURES = {"score_paper": "FC->CNN score (paper probe)", "score_large": "FC->CNN score (large probe)",
            "accuracy": "test accuracy", "attacked": "attacked accuracy"}


def compare_means(reference: Iterable[float], other: Iterable[float]) -> dict[str, Any]:
    """Means, sds, difference, the spread bound, Welch's t and the verdict (None when either
    side has fewer than 2 values: no spread to compare with)."""
    ref, oth = [float(v) for v in reference], [float(v) for v in other]
    (m_ref, sd_ref), (m_oth, sd_oth) = mean_sd(ref), mean_sd(oth)
    diff = m_oth - m_ref
    bound = 2 * max(sd_ref, sd_oth)
    se = math.sqrt(sd_ref ** 2 / len(ref) + sd_oth ** 2 / len(oth)) if len(ref) > 1 and len(oth) > 1 else math.nan
    agrees = None if math.isnan(bound) or math.isnan(diff) else bool(abs(diff) <= bound)
    return {"torch_mean": m_ref, "torch_sd": sd_ref, "mean": m_oth, "sd": sd_oth, "diff": diff,
            "bound": bound, "t": diff / se if se > 0 else math.nan, "agrees": agrees}


def agreement(records: Sequence[Mapping[str, Any]], frameworks: list[str], models: list[str]) -> list[dict[str, Any]]:
    """One row per (non-torch framework, model, measure): the comparison with torch's run.
    Empty when torch is not among ``frameworks`` (nothing to compare with)."""
    if "torch" not in frameworks:
        return []
    def values(framework: str, model: str, measure: str) -> list[float]:
        return [r[measure] for r in records if r["framework"] == framework and r["model"] == model]

    return [{"framework": f, "model": m, "measure": key,
             **compare_means(values("torch", m, key), values(f, m, key))}
            for f in frameworks if f != "torch" for m in models for key in MEASURES]


def verdict_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Per framework and measure: how many nets agree, and which do not."""
    lines = []
    for framework in dict.fromkeys(r["framework"] for r in rows):
        parts = []
        for measure, label in MEASURES.items():
            mine = [r for r in rows if r["framework"] == framework and r["measure"] == measure]
            decided = [r for r in mine if r["agrees"] is not None]
            if not decided:
                parts.append(f"{label}: no verdict (needs >= 2 seeds)")
                continue
            off = [r["model"] for r in decided if not r["agrees"]]
            parts.append(f"{label} {len(decided) - len(off)}/{len(decided)}"
                         + (f" (outside: {', '.join(off)})" if off else ""))
        lines.append(f"{framework} agrees with torch within the seed-to-seed spread: " + "; ".join(parts))
    return lines
