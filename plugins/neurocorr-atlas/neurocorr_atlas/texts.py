"""What the atlas's commands print: the atlas listing, the grid's score matrix, a prediction and
a leave-one-out evaluation, as plain text."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neurocorr_core import Probe

from .estimators import LeaveOneOut, Prediction
from .predict import PredictionReport
from .store import AtlasModel


def atlas_text(path: Path, models: Sequence[AtlasModel], configs: Sequence[dict[str, Any]]) -> str:
    """``atlas ls``: one line per model, then one per stored configuration."""
    lines = [f"{path}: {len(models)} model(s)"]
    width = max([len(m.name) for m in models] + [4])
    for m in models:
        shown = "  ".join(f"{k} {v:.4g}" for k, v in m.measurements.items()) or "-"
        lines.append(f"  {m.name:<{width}}  {m.framework:<10} {shown:<40} {m.layers or 'kind:activation'}  "
                     f"{m.source}")
    for c in configs:
        cfg = c["config"]
        lines.append(f"comparisons {c['key']}: {c['pairs']} pair(s) on {c['probe']} ({c['samples']} samples), "
                     f"{cfg.get('metric')}/{cfg.get('matching')}, neurons {cfg.get('neurons')}, "
                     f"depth penalty {cfg.get('depth_penalty')}")
    return "\n".join(lines)


def grid_text(models: Sequence[str], matrix: np.ndarray) -> str:
    """The symmetric scores as a table, '-' where a pair is not compared."""
    width = max(len(n) for n in models)
    lines = [" " * width + "  " + " ".join(f"{n[:8]:>8}" for n in models)]
    for name, row in zip(models, matrix, strict=True):
        lines.append(f"{name:<{width}}  " + " ".join("       -" if np.isnan(v) else f"{v:8.4f}" for v in row))
    return "\n".join(lines)


def interval_text(p: Prediction) -> str:
    if p.low is None or p.high is None:
        return f"{p.level:.0%} interval unbounded (too few references for this level)"
    return f"{p.level:.0%} interval [{p.low:.4f}, {p.high:.4f}]"


def report_text(report: PredictionReport) -> str:
    lines = [f"{report.model} vs {len(report.scores)} references on {report.probe} ({report.samples} "
             f"samples), configuration {report.config}; {report.computed} comparison(s) run"]
    for p in report.predictions:
        params = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in p.params.items())
        nearest = ", ".join(f"{n} {s:.4f}" for n, s in p.nearest)
        lines.append(f"{p.measure}: {p.value:.4f}, {interval_text(p)}; estimator {p.estimator} ({params}); "
                     f"leave-one-out MAE {p.loo_mae:.4f} vs {p.baseline_mae:.4f} for the mean of the "
                     f"{p.references} references ({p.baseline:.4f}); most similar: {nearest}")
    return "\n".join(lines)


def loo_text(results: Sequence[LeaveOneOut], probe: Probe) -> str:
    lines = [f"leave-one-out on {probe.name} ({len(probe)} samples): each reference predicted from the "
             "others"]
    for r in results:
        lines.append(f"{r.measure} ({len(r.names)} references), estimator {r.estimator}: MAE {r.mae:.4f}; "
                     f"baseline (mean of the others): MAE {r.baseline_mae:.4f}")
    for measure in dict.fromkeys(r.measure for r in results):
        rows = [r for r in results if r.measure == measure]
        lines.append(f"  {measure}: {'model':<16} {'measured':>8} "
                     + " ".join(f"{r.estimator:>8}" for r in rows)
                     + f" {'baseline':>8}")
        for i, n in enumerate(rows[0].names):
            lines.append(f"  {'':<{len(measure)}}  {n:<16} {rows[0].measured[i]:8.4f} "
                         + " ".join(f"{r.predicted[i]:8.4f}" for r in rows) + f" {rows[0].baseline[i]:8.4f}")
    return "\n".join(lines)
