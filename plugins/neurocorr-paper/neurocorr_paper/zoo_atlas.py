"""The zoo's leave-one-architecture-out test of the atlas's estimators (docs/atlas.md, docs/study.md).

Can an atlas of known models tell a new *kind* of model's accuracy better than the mean? The
estimators are :mod:`neurocorr_atlas.estimators` as ``neurocorr predict`` applies them
(``weighted``: a similarity-weighted mean, tau chosen by leave-one-out among the references;
``linear``: the paper's line on the score with the best reference). A full atlas of the zoo
would need every pairwise score (about 156^2 / 2 comparisons); this design needs models x anchors:

- **Anchors** (the atlas's references), fixed by a rule that looks at no target: every trusted run
  (all training images, clean labels) of seed 0 at each of its checkpoints, so the anchors span
  every architecture and training stage, plus the zoo's references (the most accurate trusted
  model overall and of each family). Every model is scored against every anchor with the paper's
  symmetric score on the zoo's probe; the scores against the zoo's references are the ``score_sym``
  the zoo already measured.
- **Folds**: for each architecture, the atlas is the anchors of the *other* architectures (their
  scores among themselves and their measured targets); each estimator is fitted on it and predicts
  every model of the held-out architecture from its scores to those anchors (the overall reference
  is left out of the predicted models, as in the zoo's other tables).
- **Baselines**: the mean of every model of the other architectures (``mean_training``, the
  baseline of the zoo's line-vs-mean column) and the mean of the fold's anchors (``mean_atlas``,
  the atlas's own baseline).
- **Paired comparison** of absolute errors: the MAE of each architecture's models, averaged over
  architectures; the mean per-architecture difference with a percentile bootstrap interval over
  architectures and an exact Wilcoxon signed-rank p over them (the architecture is the
  independent unit: its models share one fitted estimator), and a Wilcoxon p over the models
  (for reference; they are not independent).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neurocorr_atlas.estimators import FITTERS

from . import stats
from .output import write_text

ANCHOR_SEED = 0
ESTIMATORS = ("weighted", "linear")
BASELINES = ("mean_training", "mean_atlas")
#: Measures one model's symmetric scores against some anchors: (model id, anchor ids) -> {anchor: score}.
Measure = Callable[[str, Sequence[str]], dict[str, float]]


def pick_anchors(records: Sequence[dict[str, Any]], references: dict[str, str]) -> list[str]:
    """Every checkpoint of the trusted seed-0 runs, then the zoo's references (no repeats)."""
    ids = [r["id"] for r in records if not r["noise"] and r["train_frac"] == 1 and r["seed"] == ANCHOR_SEED]
    return list(dict.fromkeys([*ids, *references.values()]))


def anchor_scores(records: Sequence[dict[str, Any]], anchors: Sequence[str], measure: Measure, folder: Path,
                  tag: str, known: dict[str, dict[str, float]],
                  progress: Callable[[str], None] = print) -> tuple[dict[str, dict[str, float]], int]:
    """model id -> anchor id -> symmetric score, and how many comparisons were run. ``known``:
    anchor -> model -> score already measured (reused); an anchor pair is measured once; each
    model's row is cached in ``folder/MODEL__anchors__TAG.json`` (a re-run measures only what is
    missing)."""
    out: dict[str, dict[str, float]] = {}
    computed = 0
    for k, r in enumerate(records):
        m = r["id"]
        cache = folder / f"{m}__anchors__{tag}.json"
        row: dict[str, float] = json.loads(cache.read_text()) if cache.exists() else {}
        for a in anchors:
            if a != m and a not in row:
                done = known.get(a, {}).get(m, out.get(a, {}).get(m))
                if done is not None:
                    row[a] = float(done)
        todo = [a for a in anchors if a != m and a not in row]
        if todo:
            if k % 10 == 0:
                progress(f"scores against the {len(anchors)} anchors: {k + 1}/{len(records)}")
            row.update(measure(m, todo))
            computed += len(todo)
            write_text(cache, json.dumps(row))
        out[m] = row
    return out, computed


def predict_folds(records: Sequence[dict[str, Any]], scores: dict[str, dict[str, float]], anchors: Sequence[str],
                  targets: Sequence[str], exclude: str | None = None) -> list[dict[str, Any]]:
    """One row per predicted model and target: measured value, each estimator's and baseline's
    prediction, with the architecture held out (see the module text)."""
    by_id = {r["id"]: r for r in records}
    rows = [r for r in records if r["id"] != exclude]
    out = []
    for arch in dict.fromkeys(r["arch"] for r in rows):
        held = [r for r in rows if r["arch"] == arch]
        train = [r for r in rows if r["arch"] != arch]
        refs = [a for a in anchors if by_id[a]["arch"] != arch]
        s_refs = np.array([[1.0 if a == b else scores[a][b] for b in refs] for a in refs])
        for target in targets:
            y = np.array([float(by_id[a][target]) for a in refs])
            fitted = {e: FITTERS[e](s_refs, y, refs) for e in ESTIMATORS}
            base = {"mean_training": float(np.mean([float(r[target]) for r in train])), "mean_atlas": float(y.mean())}
            for r in held:
                s = np.array([scores[r["id"]][a] for a in refs])
                out.append({"id": r["id"], "arch": arch, "target": target, "measured": float(r[target]),
                            **{e: fitted[e].predict(s) for e in ESTIMATORS}, **base, "references": len(refs),
                            "tau": fitted["weighted"].params["tau"], "line_anchor": fitted["linear"].params["anchor"]})
    return out


def compare_errors(predictions: Sequence[dict[str, Any]], targets: Sequence[str], *, resamples: int = 2000,
                   seed: int = 0) -> list[dict[str, Any]]:
    """For each target, estimator and baseline: MAE of each (per architecture, averaged over
    architectures), their mean per-architecture difference with a 95% bootstrap interval, the
    exact Wilcoxon p over architectures, the Wilcoxon p over models, and the architectures won."""
    out = []
    for target in targets:
        rows = [p for p in predictions if p["target"] == target]
        archs = list(dict.fromkeys(p["arch"] for p in rows))
        for estimator in ESTIMATORS:
            for baseline in BASELINES:
                err = np.array([abs(p[estimator] - p["measured"]) for p in rows])
                ref = np.array([abs(p[baseline] - p["measured"]) for p in rows])
                labels = np.array([p["arch"] for p in rows], dtype=object)
                mae = np.array([err[labels == a].mean() for a in archs])
                mae_ref = np.array([ref[labels == a].mean() for a in archs])
                diff = mae - mae_ref
                low, high = stats.cluster_bootstrap_ci(diff, archs, resamples=resamples, seed=seed)
                out.append({"target": target, "estimator": estimator, "baseline": baseline, "models": len(rows),
                            "architectures": len(archs), "mae": float(mae.mean()),
                            "mae_baseline": float(mae_ref.mean()), "difference": float(diff.mean()),
                            "difference_low": low, "difference_high": high,
                            "wins": int(np.sum(diff < 0)), "p_architectures": stats.wilcoxon(diff).p,
                            "p_models": stats.wilcoxon(err - ref).p})
    return out


def markdown(summary: Sequence[dict[str, Any]], anchors: Sequence[str], computed: int) -> list[str]:
    """The tables.md section."""
    out = ["", f"Leave one architecture out with the atlas's estimators (neurocorr predict's `weighted` and "
           f"`linear`): the atlas is the {len(anchors)} anchors (every checkpoint of the trusted seed-{ANCHOR_SEED} "
           "runs and the zoo's references) outside the held-out architecture, each model predicted from its "
           f"symmetric scores to them ({computed} comparisons run in this invocation). MAE per architecture, "
           "averaged over architectures; difference = estimator - baseline (negative: the estimator is better) "
           "[95% bootstrap CI over architectures]; Wilcoxon signed-rank p over the architectures (exact) and "
           "over the models", "",
           "| target | estimator | baseline | MAE | baseline MAE | difference [95% CI] | wins | p (archs) | "
           "p (models) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in summary:
        out.append(f"| {r['target']} | {r['estimator']} | {r['baseline']} | {r['mae']:.4f} | {r['mae_baseline']:.4f} "
                   f"| {r['difference']:+.4f} [{r['difference_low']:+.4f}, {r['difference_high']:+.4f}] "
                   f"| {r['wins']}/{r['architectures']} | {r['p_architectures']:.3f} | {r['p_models']:.4f} |")
    return out
