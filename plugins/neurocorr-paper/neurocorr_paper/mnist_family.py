"""The paper's MNIST-family experiment: five MLPs and a CNN, their network scores, and
their accuracy under a transfer attack, over several training seeds.

``run`` trains and measures (returns plain records, one per seed and model); ``summarise``
turns them into the table, the FC<->FC pairs, the rank correlations and the claims;
``render`` makes the files (CSV, JSON, PNG) and ``report`` the terminal text.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from neurocorr_core import Comparison, compare, get_plugin_manager

from . import figures
from .attack import transfer_attack
from .data import load_split
from .output import to_csv, to_json
from .settings import MLP_SHAPES, PAPER, Settings
from .summary import fmt, mean_sd, spearman, spread
from .trainers import MLP_TRAINERS, TrainedModel, cnn_like, torch_cnn

SEED_STRIDE = 1000  # seed s trains MLP k with s*1000+k, the CNN with +10, the surrogate with +20
MODELS = [*MLP_SHAPES, "cnn"]
PAIRS = [f"{a}-{b}" for a, b in itertools.combinations(MLP_SHAPES, 2)]
MEASURES = ("accuracy", "attack_clean", "attacked", "score_paper", "score_large", "sym_paper",
            "sym_large", "dead_paper", "dead_large", "score_paper_untrained", "score_large_untrained")


@dataclass
class Run:
    """Everything measured: ``records`` one dict per (seed, model), ``pairs`` one per (seed, MLP pair)."""

    dataset: str
    settings: Settings
    seeds: list[int]
    framework: str
    sizes: dict[str, int]
    records: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    threads: int = 1


def run(dataset: str, settings: Settings, seeds: list[int], *, framework: str = "torch",
        progress: bool = True) -> Run:
    """Train and measure everything for each seed."""
    from tqdm import tqdm

    start = time.perf_counter()
    data = load_split(dataset, settings)
    attack_n = min(settings.attack_limit or len(data.x_test), len(data.x_test))
    result = Run(dataset, settings, seeds, framework, {
        "train": len(data.x_train), "test": len(data.x_test), "attack": attack_n,
        "paper_probe": min(settings.paper_probe, len(data.x_test)),
        "large_probe": min(settings.large_probe, len(data.x_test))})
    steps = (settings.cnn_epochs + (settings.surrogate_epochs or settings.cnn_epochs)
             + len(MLP_SHAPES) * 2 + len(PAIRS) + settings.attack_rounds)
    bar = tqdm(total=steps * len(seeds), desc=f"mnist-family {dataset}", unit="step", leave=False,
               disable=not (progress and sys.stderr.isatty()))
    try:
        for seed in seeds:
            records, pairs = _one_seed(data, settings, seed, MLP_TRAINERS[framework], attack_n, bar)
            result.records += records
            result.pairs += pairs
    finally:
        bar.close()
    result.seconds = time.perf_counter() - start
    result.threads = torch.get_num_threads()
    return result


def _one_seed(data: Any, settings: Settings, seed: int, trainer: Callable[..., TrainedModel],
              attack_n: int, bar: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    base = seed * SEED_STRIDE

    def tick(_step: int = 0) -> None:
        bar.update()

    def step(text: str) -> None:
        bar.set_postfix_str(f"seed {seed}: {text}")

    step("CNN")
    cnn = torch_cnn("cnn", data, settings, base + 10, on_epoch=tick)
    mlps = []
    for k, (name, hidden) in enumerate(MLP_SHAPES.items()):
        step(name)
        mlps.append(trainer(name, hidden, data, settings, base + k))
        tick()
    records = {m.name: {"seed": seed, "model": m.name, "hidden": MLP_SHAPES.get(m.name, "2 conv blocks"),
                        "accuracy": m.accuracy} for m in [*mlps, cnn]}
    x_test = data.x_test.numpy()
    step("scores")
    for m in mlps:
        records[m.name].update(_scores_to_cnn(m, cnn, x_test, settings, ""))
        tick()
    for name, values in _untrained_scores(data, settings, base, trainer, x_test).items():
        records[name].update(values)
    pairs = []
    for a, b in itertools.combinations(mlps, 2):
        res = network_score(a, b, x_test)
        pairs.append({"seed": seed, "pair": f"{a.name}-{b.name}", "a_to_b": res.score.a_to_b,
                      "b_to_a": res.score.b_to_a, "symmetric": res.score.symmetric})
        tick()
    step("surrogate and FGSM rounds")
    for name, values in _attack(data, settings, base, attack_n, [*mlps, cnn], tick).items():
        records[name].update(values)
    return [r | {"seed": seed} for r in records.values()], pairs


def _scores_to_cnn(m: TrainedModel, cnn: TrainedModel, x_test: np.ndarray, settings: Settings,
                   suffix: str) -> dict[str, Any]:
    """FC->CNN scores on the paper's probe and the large one, the symmetric scores, and the
    MLP's constant (dead) neurons on each probe."""
    out: dict[str, Any] = {}
    for tag, n in (("paper", settings.paper_probe), ("large", settings.large_probe)):
        res = network_score(m, cnn, x_test[:n])
        out |= {f"score_{tag}{suffix}": res.score.a_to_b, f"sym_{tag}{suffix}": res.score.symmetric,
                f"dead_{tag}{suffix}": sum(lr.dead for lr in res.layers_a)}
    return out


def _untrained_scores(data: Any, settings: Settings, base: int, trainer: Callable[..., TrainedModel],
                      x_test: np.ndarray) -> dict[str, dict[str, float]]:
    """The chance level: each MLP at its initialisation (same seed, 0 epochs) against the CNN at
    its initialisation. What of the score is there before any learning."""
    untrained = dataclasses.replace(settings, mlp_epochs=0, cnn_epochs=0)
    cnn0 = torch_cnn("cnn", data, untrained, base + 10)
    out = {}
    for k, (name, hidden) in enumerate(MLP_SHAPES.items()):
        scores = _scores_to_cnn(trainer(name, hidden, data, untrained, base + k), cnn0, x_test, settings,
                                "_untrained")
        out[name] = {key: v for key, v in scores.items() if key.startswith("score_")}
    return out


def _attack(data: Any, settings: Settings, base: int, attack_n: int, models: list[TrainedModel],
            tick: Callable[[int], None]) -> dict[str, dict[str, float]]:
    """Accuracy of every model on the first ``attack_n`` test images, clean and after the
    surrogate's transfer attack."""
    surrogate = torch_cnn("surrogate", data, settings, base + 20, epochs=settings.surrogate_epochs,
                          on_epoch=tick)
    assert isinstance(surrogate.model, torch.nn.Module)
    x_att, y_att = data.x_test[:attack_n], data.y_test[:attack_n]
    x_adv = transfer_attack(surrogate.model, x_att, y_att, rounds=settings.attack_rounds,
                            eps=settings.attack_eps, refit=settings.refit, refit_epochs=settings.refit_epochs,
                            lr=settings.cnn_lr, batch_size=settings.batch_size, seed=base + 30,
                            build=lambda: cnn_like(data, settings), on_round=tick).numpy()
    labels = y_att.numpy()
    return {m.name: {"attack_clean": float((m.predict(x_att.numpy()) == labels).mean()),
                     "attacked": float((m.predict(x_adv) == labels).mean()),
                     "surrogate_accuracy": surrogate.accuracy} for m in models}


def network_score(a: TrainedModel, b: TrainedModel, images: np.ndarray) -> Comparison:
    """The paper's network score of ``a`` against ``b`` over ``images``: Pearson |r| between
    every neuron pair (conv outputs in position view: one neuron per channel and position),
    best match per neuron, divided by (layer-depth difference + 1), constant neurons 0."""
    return compare(a.model, b.model, images, neurons="position", layers_a=a.layers, layers_b=b.layers,
                   depth_penalty="paper")


def summarise(result: Run) -> dict[str, Any]:
    """Mean +- sd per model and pair, rank correlations per seed, and the paper's claims."""
    paper = PAPER.get(result.dataset, {})
    table = []
    for model in MODELS:
        rows = [r for r in result.records if r["model"] == model]
        row: dict[str, Any] = {"model": model, "hidden": rows[0]["hidden"]}
        for key in MEASURES:
            row[f"{key}_mean"], row[f"{key}_sd"] = mean_sd(float(r.get(key, math.nan)) for r in rows)
        for key in ("accuracy", "score_to_cnn", "attack_clean", "attacked", "score_to_cnn_noise_probe"):
            row[f"paper_{key}"] = paper.get(key, {}).get(model, math.nan)
        table.append(row)
    pairs = []
    for pair in PAIRS:
        rows = [p for p in result.pairs if p["pair"] == pair]
        entry: dict[str, Any] = {"pair": pair}
        for key in ("a_to_b", "b_to_a", "symmetric"):
            entry[f"{key}_mean"], entry[f"{key}_sd"] = mean_sd(p[key] for p in rows)
        entry["paper"] = paper.get("fc_pairs", {}).get(pair, math.nan)
        pairs.append(entry)
    return {"table": table, "fc_pairs": pairs, "rank_correlations": _rank_correlations(result),
            "claims": _claims(result)}


def _per_seed(result: Run, seed: int) -> dict[str, dict[str, Any]]:
    return {r["model"]: r for r in result.records if r["seed"] == seed and r["model"] in MLP_SHAPES}


def _rank_correlations(result: Run) -> list[dict[str, Any]]:
    """Spearman's rho over the five MLPs, per seed: score vs clean accuracy, vs attacked
    accuracy, and vs the accuracy drop under attack (the paper: higher score, smaller drop)."""
    targets: dict[str, Callable[[dict[str, Any]], float]] = {
        "accuracy": lambda r: r["accuracy"], "attacked": lambda r: r["attacked"],
        "drop": lambda r: r["attack_clean"] - r["attacked"]}
    out = []
    for probe in ("paper", "large"):
        for target, get in targets.items():
            rhos = []
            for seed in result.seeds:
                rows = list(_per_seed(result, seed).values())
                rhos.append(spearman([r[f"score_{probe}"] for r in rows], [get(r) for r in rows]))
            out.append({"score": f"score_{probe}", "against": target, **spread(rhos)})
    return out


def _claims(result: Run) -> dict[str, dict[str, int]]:
    """In how many seeds net5 is the lowest of the five MLPs by each measure."""
    checks = {"net5_lowest_score_paper": "score_paper", "net5_lowest_score_large": "score_large",
              "net5_lowest_accuracy": "accuracy", "net5_lowest_attacked": "attacked"}
    out = {}
    for claim, key in checks.items():
        hits = 0
        for seed in result.seeds:
            rows = _per_seed(result, seed)
            hits += min(rows, key=lambda m: rows[m][key]) == "net5"
        out[claim] = {"seeds": len(result.seeds), "holds": hits}
    return out


def render(result: Run, summary: dict[str, Any]) -> dict[str, bytes | str]:
    """The output files by name: table.csv, fc_pairs.csv, rank_correlations.csv,
    results.json, score_vs_accuracy.png, score_vs_attacked.png."""
    ranks = [{k: v for k, v in r.items() if k != "per_seed"} | {"per_seed": r["per_seed"]}
             for r in summary["rank_correlations"]]
    document = {
        "experiment": "mnist-family", "dataset": result.dataset, "seeds": result.seeds,
        "mlp_framework": result.framework, "settings": result.settings.to_dict(), "sizes": result.sizes,
        "seconds": result.seconds, "threads": result.threads, **summary, "per_seed": result.records,
        "fc_pairs_per_seed": result.pairs,
        "paper": PAPER.get(result.dataset, {}), "versions": get_plugin_manager().versions(),
        "torch": torch.__version__,
    }
    return {"table.csv": to_csv(summary["table"]), "fc_pairs.csv": to_csv(summary["fc_pairs"]),
            "rank_correlations.csv": to_csv(ranks), "results.json": to_json(document),
            "score_vs_accuracy.png": _scatter(result, summary, "accuracy", "test accuracy"),
            "score_vs_attacked.png": _scatter(result, summary, "attacked", "accuracy after transfer attack")}


def _scatter(result: Run, summary: dict[str, Any], key: str, label: str) -> bytes:
    panels = []
    for probe in ("paper", "large"):
        rho = next(r for r in summary["rank_correlations"]
                   if r["score"] == f"score_{probe}" and r["against"] == key)
        n = result.sizes[f"{probe}_probe"]
        panels.append(figures.Panel(
            title=f"probe: first {n} test images; Spearman rho {fmt(rho['mean'], rho['sd'], 2)}",
            xlabel="FC->CNN network score", ylabel=label,
            x={m: [r[f"score_{probe}"] for r in result.records if r["model"] == m] for m in MLP_SHAPES},
            y={m: [r[key] for r in result.records if r["model"] == m] for m in MLP_SHAPES}))
    return figures.scatter(panels, f"{result.dataset}: score vs {label} "
                           f"({len(result.seeds)} seeds; faint: each seed, bars: mean +- sd)")


def report(result: Run, summary: dict[str, Any]) -> str:
    """The terminal text: accuracies, FC->CNN scores, FC<->FC scores, rank correlations, claims."""
    s, n, st = result.sizes, len(result.seeds), result.settings
    lines = [f"neurocorr reproduce mnist-family: {result.dataset}, {n} seed(s) {result.seeds}, "
             f"{s['train']} train / {s['test']} test images, MLPs in {result.framework}, "
             f"{result.seconds:.0f} s on {result.threads} torch thread(s); epochs: MLPs {st.mlp_epochs}, "
             f"CNN {st.cnn_epochs}", ""]
    eps = f"{st.attack_eps * 255:.0f}/255"
    lines += _table(summary["table"], "Test accuracy, and accuracy on the attacked images before and "
                    f"after {st.attack_rounds} FGSM rounds of eps {eps} ({s['attack']} "
                    f"test images; surrogate CNN {st.surrogate_epochs or st.cnn_epochs} epoch(s), refit "
                    f"{st.refit} for {st.refit_epochs} epoch(s) per round)",
                    [("test accuracy", "accuracy"), ("clean", "attack_clean"), ("attacked", "attacked")],
                    [("paper acc", "paper_accuracy"), ("paper clean", "paper_attack_clean"),
                     ("paper attacked", "paper_attacked")])
    lines += _table(summary["table"][:-1], "FC->CNN network score (|r|, paper depth penalty, CNN conv "
                    f"blocks in position view) on the first {s['paper_probe']} test images (the paper's "
                    f"probe) and the first {s['large_probe']}; 'untrained': the same networks at "
                    "initialisation, the chance level",
                    [(f"score ({s['paper_probe']})", "score_paper"),
                     ("untrained", "score_paper_untrained"), (f"score ({s['large_probe']})", "score_large"),
                     ("untrained", "score_large_untrained")], [("paper score", "paper_score_to_cnn")])
    head = f"{'pair':<10} {'A->B':>17} {'B->A':>17} {'symmetric':>17} | {'paper':>6}"
    lines += [f"FC<->FC network scores on all {s['test']} test images", head, "-" * len(head)]
    for p in summary["fc_pairs"]:
        paper_score = "-" if math.isnan(p["paper"]) else f"{p['paper']:.4f}"
        lines.append(f"{p['pair']:<10} " + " ".join(f"{fmt(p[f'{k}_mean'], p[f'{k}_sd']):>17}"
                                                   for k in ("a_to_b", "b_to_a", "symmetric"))
                     + f" | {paper_score:>6}")
    lines += ["", "Spearman rho over the five MLPs, per seed (mean ± sd; positive/negative seeds):"]
    for r in summary["rank_correlations"]:
        lines.append(f"  {r['score']:<12} vs {r['against']:<9} {fmt(r['mean'], r['sd'], 2):>12}  "
                     f"[{r['positive']}+ / {r['negative']}-"
                     + (f" / {r['undefined']} undefined" if r["undefined"] else "") + "]  per seed: "
                     + " ".join("nan" if math.isnan(v) else f"{v:+.2f}" for v in r["per_seed"]))
    lines += ["", "net5 is the lowest of the five MLPs, in seeds: "
              + ", ".join(f"{k.removeprefix('net5_lowest_')} {v['holds']}/{v['seeds']}"
                          for k, v in summary["claims"].items())]
    return "\n".join(lines)


def _table(rows: list[dict[str, Any]], title: str, ours: list[tuple[str, str]],
           paper: list[tuple[str, str]]) -> list[str]:
    """A fixed-width table: model, our columns (mean ± sd), then the paper's numbers."""
    head = (f"{'model':<6} " + " ".join(f"{label:>17}" for label, _ in ours) + " | "
            + " ".join(f"{label:>{max(6, len(label))}}" for label, _ in paper))
    lines = [title, head, "-" * len(head)]
    for row in rows:
        cells = [fmt(row[f"{key}_mean"], row[f"{key}_sd"]) for _, key in ours]
        refs = ["-" if math.isnan(row[key]) else f"{row[key]:.4f}" for _, key in paper]
        widths = [max(6, len(label)) for label, _ in paper]
        lines.append(f"{row['model']:<6} " + " ".join(f"{c:>17}" for c in cells) + " | "
                     + " ".join(f"{r:>{w}}" for r, w in zip(refs, widths, strict=True)))
    return [*lines, ""]
