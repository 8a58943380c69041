"""Predicting a new model's quality from the reference atlas (docs/atlas.md).

The new model is compared with every reference (symmetric network score s_i); each measured
quality (``accuracy``, ``attacked_accuracy``, ...) is then estimated from the references'
values y_i and the relation between score and quality among the references (their own
pairwise scores S, from the atlas). Two estimators:

``weighted`` (default): a similarity-weighted mean, ``y = sum_i w_i y_i / sum_i w_i`` with
``w_i = exp((s_i - max_k s_k) / tau)``. tau (from :data:`TEMPERATURES`) is chosen by
leave-one-out among the references: each reference in turn is predicted from the others
through S. Small tau trusts the most similar references (nearest neighbour), large tau tends to
the plain mean. Assumes models that behave alike (high score) perform alike.

``linear``: the seed paper's reading, a straight line. The anchor is the reference with the
highest measured value; over the other references, ``y_j = a + b S[j, anchor]`` is fitted by
least squares, and the new model gets ``a + b s_anchor``, clipped to the range of the
references' values (a line is no licence to extrapolate). Assumes quality rises (or falls)
linearly with the score towards the best model.

The interval comes from leave-one-out residuals r_j of the same estimator (the held-out
reference's own tau or line fitted from the others only, so the residuals are honest): half
width = the ceil((n + 1) * level)-th smallest |r_j| (split-conformal style; it covers at the
stated level when the new model is exchangeable with the references). With too few references
for the level, the interval is unbounded (None). The baseline is the mean of the references;
its leave-one-out error is reported beside the estimator's, so a prediction that does not beat
it is visible as such.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atlas import Atlas, fill, grid_models, recorder
from .errors import NeurocorrError
from .grid import GridConfig, GridModel, grid
from .models import describe
from .plugins import PluginManager
from .probe import Probe, load_probe

ESTIMATORS = ("weighted", "linear")
#: Temperatures the weighted estimator chooses from (score units).
TEMPERATURES = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
#: References (with the measure) a prediction needs at least.
MIN_REFERENCES = 3


@dataclass(frozen=True)
class Fitted:
    """An estimator fitted on references: ``predict(s)`` maps the target's scores with those
    references (in their order) to an estimate; ``params`` says what was chosen."""

    estimator: str
    params: dict[str, Any]
    predict: Callable[[np.ndarray], float]


def weighted_mean(s: np.ndarray, y: np.ndarray, tau: float) -> float:
    """``sum w y / sum w`` with ``w = exp((s - max s) / tau)`` (shifted: no overflow)."""
    w = np.exp((s - np.max(s)) / tau)
    return float(w @ y / w.sum())


def fit_weighted(scores: np.ndarray, y: np.ndarray, names: Sequence[str] | None = None) -> Fitted:
    """Choose tau by leave-one-out over the references (``scores`` (n, n) symmetric, ``y`` (n,));
    a tie goes to the larger tau (the smoother estimate)."""
    n = len(y)
    best_tau, best_err = TEMPERATURES[-1], math.inf
    if n >= 2:
        for tau in TEMPERATURES:
            errs = [abs(y[j] - weighted_mean(np.delete(scores[j], j), np.delete(y, j), tau))
                    for j in range(n)]
            err = float(np.mean(errs))
            if err <= best_err + 1e-15:
                best_tau, best_err = tau, err
    y = np.array(y, dtype=np.float64)
    return Fitted("weighted", {"tau": best_tau}, lambda s: weighted_mean(np.asarray(s), y, best_tau))


def fit_linear(scores: np.ndarray, y: np.ndarray, names: Sequence[str] | None = None) -> Fitted:
    """Least-squares line of quality on the score with the best reference (the anchor), its
    estimates clipped to ``[min y, max y]``."""
    anchor = int(np.argmax(y))
    others = np.array([j for j in range(len(y)) if j != anchor])
    x, t = scores[others, anchor], np.asarray(y, dtype=np.float64)[others]
    if len(others) >= 2 and np.ptp(x) > 0:
        slope, intercept = (float(v) for v in np.polyfit(x, t, 1))
    else:  # no spread in the score: the line is flat at the mean
        slope, intercept = 0.0, float(np.mean(t)) if len(t) else float(y[anchor])
    label = names[anchor] if names is not None else anchor
    low, high = float(np.min(y)), float(np.max(y))
    return Fitted("linear", {"anchor": label, "slope": slope, "intercept": intercept},
                  lambda s: min(high, max(low, intercept + slope * float(np.asarray(s)[anchor]))))


FITTERS: dict[str, Callable[..., Fitted]] = {"weighted": fit_weighted, "linear": fit_linear}


def check_estimator(name: str) -> Callable[..., Fitted]:
    if name not in FITTERS:
        raise NeurocorrError(f"unknown estimator {name!r}; choose one of {', '.join(ESTIMATORS)}")
    return FITTERS[name]


def leave_one_out(scores: np.ndarray, y: np.ndarray, estimator: str) -> np.ndarray:
    """Each reference predicted from the others (the estimator refitted without it): (n,)."""
    fit = check_estimator(estimator)
    n = len(y)
    out = np.empty(n)
    for j in range(n):
        keep = np.array([k for k in range(n) if k != j])
        fitted = fit(scores[np.ix_(keep, keep)], y[keep])
        out[j] = fitted.predict(scores[j, keep])
    return out


def baseline_leave_one_out(y: np.ndarray) -> np.ndarray:
    """The mean of the other references, for each reference: (n,)."""
    n = len(y)
    return (y.sum() - y) / (n - 1)


def half_width(residuals: np.ndarray, level: float) -> float:
    """The ceil((n + 1) * level)-th smallest |residual|; inf when n is too small for ``level``."""
    n = len(residuals)
    rank = math.ceil((n + 1) * level)
    if rank > n:
        return math.inf
    return float(np.sort(np.abs(residuals))[rank - 1])


# -- results ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    """One measure of the new model: the estimate, its interval at ``level`` (None: unbounded),
    the estimator's leave-one-out mean absolute error among the references and the baseline's
    (the mean of the references)."""

    measure: str
    value: float
    low: float | None
    high: float | None
    level: float
    estimator: str
    params: dict[str, Any]
    references: int
    loo_mae: float
    baseline: float
    baseline_mae: float
    nearest: list[tuple[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class LeaveOneOut:
    """Every reference predicted from the others: ``predicted`` by the estimator,
    ``baseline`` by the mean of the others; ``mae`` and ``baseline_mae`` their mean absolute errors."""

    measure: str
    estimator: str
    names: list[str]
    measured: list[float]
    predicted: list[float]
    baseline: list[float]
    mae: float
    baseline_mae: float


def estimate(scores: np.ndarray, y: np.ndarray, s_new: np.ndarray, *, measure: str, names: Sequence[str],
             estimator: str = "weighted", level: float = 0.9) -> Prediction:
    """The :class:`Prediction` of a model with scores ``s_new`` (n,) to references of scores
    ``scores`` (n, n) and values ``y`` (n,)."""
    if not 0 < level < 1:
        raise NeurocorrError(f"the interval level must lie in (0, 1), got {level}")
    fit = check_estimator(estimator)
    if len(y) < MIN_REFERENCES:
        raise NeurocorrError(f"predicting {measure} needs at least {MIN_REFERENCES} references that have it; "
                             f"the atlas has {len(y)}. Add some: neurocorr atlas add MODEL "
                             f"--{measure.replace('_', '-')} ...")
    fitted = fit(scores, y, names)
    value = fitted.predict(s_new)
    loo = leave_one_out(scores, y, estimator)
    width = half_width(y - loo, level)
    order = np.argsort(-s_new)[:3]
    return Prediction(measure, value, None if math.isinf(width) else value - width,
                      None if math.isinf(width) else value + width, level, estimator, fitted.params, len(y),
                      float(np.mean(np.abs(y - loo))), float(np.mean(y)),
                      float(np.mean(np.abs(y - baseline_leave_one_out(y)))),
                      [(names[i], float(s_new[i])) for i in order])


def _measured(models: Sequence[Any], measure: str) -> np.ndarray:
    return np.array([i for i, m in enumerate(models) if measure in m.measurements], dtype=int)


def _measures(models: Sequence[Any], chosen: Sequence[str] | None) -> list[str]:
    known = sorted({k for m in models for k in m.measurements})
    if chosen is None:
        return [k for k in known if len(_measured(models, k)) >= MIN_REFERENCES]
    for k in chosen:
        if k not in known:
            raise NeurocorrError(f"no reference has the measurement {k!r}; measurements in the atlas: "
                                 f"{', '.join(known) or 'none'}")
    return list(chosen)


@dataclass
class PredictionReport:
    model: str
    probe: str
    samples: int
    config: str
    scores: dict[str, float]
    predictions: list[Prediction]
    computed: int

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "predictions"},
                "predictions": [asdict(p) for p in self.predictions]}


def predict(model: object, atlas: Atlas, probe: str | os.PathLike[str] | np.ndarray | Probe, *,
            name: str | None = None, layers: str | None = None, provider: str | None = None,
            options: dict[str, Any] | None = None, config: GridConfig | None = None,
            estimator: str = "weighted", level: float = 0.9, measures: Sequence[str] | None = None,
            plugin_manager: PluginManager | None = None, trust_pickle: bool = False,
            **run: Any) -> PredictionReport:
    """Compare ``model`` with the atlas's references over ``probe`` and estimate each measure.

    ``trust_pickle``: allow unpickling the references (the atlas never stores that trust; the
    new model's own is ``options={"trust_pickle": True}``).

    Reference pairs not yet in the atlas under this configuration are compared first and
    stored; the new model's comparisons are not stored. ``run``: the executor, shard and cache
    keywords of :func:`~neurocorr_core.grid.grid`.
    """
    check_estimator(estimator)
    if not 0 < level < 1:
        raise NeurocorrError(f"the interval level must lie in (0, 1), got {level}")
    probe = load_probe(probe)
    config = config or GridConfig()
    refs = atlas.models()
    chosen = _measures(refs, measures)
    if not chosen:
        raise NeurocorrError(f"the atlas {atlas.path} has no measurement that {MIN_REFERENCES} or more "
                             "references "
                             "share; add references with: neurocorr atlas add MODEL --name NAME --accuracy "
                             "0.97")
    label = name or f"new:{describe(model)}"
    if label in {m.name for m in refs}:
        raise NeurocorrError(f"the new model's name {label!r} is a reference's name; give it another "
                             "(--name)")
    key = config.key(probe)
    fps = {m.name: m.fingerprint for m in refs}
    ref_names = [m.name for m in refs]
    done = {frozenset(p) for p in atlas.done(key)}
    pairs = [(a, b) for i, a in enumerate(ref_names) for b in ref_names[i + 1:]
             if frozenset((a, b)) not in done]
    pairs += [(label, r) for r in ref_names]
    new = GridModel(label, model, layers, provider, options or {})
    result = grid([new, *grid_models(refs, trust_pickle)], probe, config=config, pairs=pairs,
                  on_pair=recorder(atlas, key, config, probe, fps), fingerprints=fps,
                  plugin_manager=plugin_manager, **run)
    s_new = result.symmetric[0, 1:]
    scores = atlas.symmetric(key, ref_names)
    out = []
    for measure in chosen:
        idx = _measured(refs, measure)
        y = np.array([refs[i].measurements[measure] for i in idx])
        out.append(estimate(scores[np.ix_(idx, idx)], y, s_new[idx], measure=measure,
                            names=[ref_names[i] for i in idx], estimator=estimator, level=level))
    scores_new = dict(zip(ref_names, map(float, s_new), strict=True))
    return PredictionReport(label, probe.name, len(probe), key, scores_new,
                            out, len(result.computed))


def evaluate(atlas: Atlas, probe: str | os.PathLike[str] | np.ndarray | Probe, *,
             config: GridConfig | None = None,
             estimators: Sequence[str] = ESTIMATORS, measures: Sequence[str] | None = None,
             plugin_manager: PluginManager | None = None, trust_pickle: bool = False,
             **run: Any) -> list[LeaveOneOut]:
    """Leave-one-out over the references (the grid filled first where pairs are missing): each
    reference's measures predicted from the others, for each estimator, beside the baseline.
    ``trust_pickle``: allow unpickling the references (never stored in the atlas)."""
    probe = load_probe(probe)
    config = config or GridConfig()
    for estimator in estimators:
        check_estimator(estimator)
    fill(atlas, probe, config=config, plugin_manager=plugin_manager, trust_pickle=trust_pickle, **run)
    refs = atlas.models()
    names = [m.name for m in refs]
    scores = atlas.symmetric(config.key(probe), names)
    out = []
    for measure in _measures(refs, measures):
        idx = _measured(refs, measure)
        if len(idx) < MIN_REFERENCES:
            raise NeurocorrError(f"leave-one-out on {measure} needs at least {MIN_REFERENCES} references "
                                 f"with it; the atlas has {len(idx)}")
        y = np.array([refs[i].measurements[measure] for i in idx])
        sub = scores[np.ix_(idx, idx)]
        base = baseline_leave_one_out(y)
        for estimator in estimators:
            pred = leave_one_out(sub, y, estimator)
            out.append(LeaveOneOut(measure, estimator, [names[i] for i in idx], y.tolist(), pred.tolist(),
                                   base.tolist(), float(np.mean(np.abs(y - pred))),
                                   float(np.mean(np.abs(y - base)))))
    return out


# -- command line: neurocorr predict ----------------------------------------------------------------------
def add_command(sub: Any) -> None:
    """Add ``neurocorr predict`` to the CLI's subparsers."""
    from .cli_options import add_comparison_options, add_model_options
    from .executor import add_arguments

    p = sub.add_parser("predict", help="predict a new model's accuracy from the reference atlas "
                                       "(docs/atlas.md)")
    p.add_argument("model", nargs="?", help="the new model: file or module:callable reference")
    p.add_argument("--atlas", default="atlas.db", help="atlas file or sqlite:///PATH (default atlas.db)")
    p.add_argument("--name", help="the new model's name in the output (default new:MODEL)")
    p.add_argument("--layers", help="the new model's layers: globs or kind:KIND (default kind:activation)")
    add_model_options(p, what="the new model")
    _trust_help(p, "allow loading the new model and the references from pickles (runs code from the files; "
                   "the atlas does not remember it, give it every time)")
    p.add_argument("--estimator", choices=ESTIMATORS, default="weighted",
                   help="weighted (similarity-weighted mean, default) or linear (line through the scores "
                        "with the best reference)")
    p.add_argument("--level", type=float, default=0.9, help="level of the interval (default 0.9)")
    p.add_argument("--measure", action="append", metavar="NAME",
                   help="predict only this measure (repeatable; default: every shared measure)")
    p.add_argument("--leave-one-out", action="store_true",
                   help="instead: predict every reference from the others, with each estimator and the "
                        "baseline")
    p.add_argument("--json", metavar="OUT", help="write the result as JSON to OUT ('-': standard output)")
    add_comparison_options(p, layers=False)
    add_arguments(p, cache_default=True)
    p.set_defaults(run=_predict)


def _trust_help(p: argparse.ArgumentParser, text: str) -> None:
    """--trust-pickle covers the references too: say so in its help."""
    for action in p._actions:  # argparse has no public way to reword an option's help
        if "--trust-pickle" in action.option_strings:
            action.help = text


def _predict(args: argparse.Namespace) -> int:
    from .cli_options import model_options
    from .executor import options_from
    from .grid import config_from
    from .report import STDOUT, check_outputs, stdout_to_stderr
    from .result import write_atomic

    if bool(args.model) == bool(args.leave_one_out):
        raise NeurocorrError("give the new model (neurocorr predict MODEL --atlas ... --probe ...) or "
                             "--leave-one-out, not both or neither")
    if args.json:
        check_outputs({"json": args.json})  # before the work, as 'compare' does
    run = options_from(args, True)
    config, probe = config_from(args)
    to_stdout = args.json == STDOUT
    with Atlas(args.atlas) as atlas, stdout_to_stderr() if to_stdout else contextlib.nullcontext():
        if args.leave_one_out:
            loo = evaluate(atlas, probe, config=config, measures=args.measure, trust_pickle=args.trust_pickle,
                           **run)
            data: Any = [asdict(r) for r in loo]
            print(_loo_text(loo, probe))
        else:
            report = predict(args.model, atlas, probe, name=args.name, layers=args.layers,
                             provider=args.provider,
                             options=model_options(args), config=config,
                             estimator=args.estimator, level=args.level, measures=args.measure,
                             trust_pickle=args.trust_pickle, **run)
            data = report.to_dict()
            print(_report_text(report))
    if to_stdout:
        print(json.dumps(data, indent=2))
    elif args.json:
        write_atomic(Path(args.json), json.dumps(data, indent=2))
        print(f"wrote {args.json}")
    return 0


def _interval(p: Prediction) -> str:
    if p.low is None or p.high is None:
        return f"{p.level:.0%} interval unbounded (too few references for this level)"
    return f"{p.level:.0%} interval [{p.low:.4f}, {p.high:.4f}]"


def _report_text(report: PredictionReport) -> str:
    lines = [f"{report.model} vs {len(report.scores)} references on {report.probe} ({report.samples} "
             f"samples), configuration {report.config}; {report.computed} comparison(s) run"]
    for p in report.predictions:
        params = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in p.params.items())
        nearest = ", ".join(f"{n} {s:.4f}" for n, s in p.nearest)
        lines.append(f"{p.measure}: {p.value:.4f}, {_interval(p)}; estimator {p.estimator} ({params}); "
                     f"leave-one-out MAE {p.loo_mae:.4f} vs {p.baseline_mae:.4f} for the mean of the "
                     f"{p.references} references ({p.baseline:.4f}); most similar: {nearest}")
    return "\n".join(lines)


def _loo_text(results: Sequence[LeaveOneOut], probe: Probe) -> str:
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
