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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from neurocorr_core import Comparison, compare, get_plugin_manager

from . import figures, stats
from .agreement import RULE as AGREEMENT_RULE
from .agreement import agreement, verdict_lines
from .attack import paper_attack, transfer_attack
from .data import load_split
from .output import to_csv, to_json
from .settings import MLP_SHAPES, PAPER, Settings
from .summary import fmt, mean_sd, spread
from .trained_model import TrainedModel
from .trainers import MLP_TRAINERS, cnn_like, torch_cnn

SEED_STRIDE = 1000  # seed s trains MLP k with s*1000+k, the CNN with +10, the surrogate with +20
MODELS = [*MLP_SHAPES, "cnn"]
PAIRS = [f"{a}-{b}" for a, b in itertools.combinations(MLP_SHAPES, 2)]
MEASURES = ("accuracy", "attack_clean", "attacked", "score_paper", "score_large", "sym_paper",
            "sym_large", "dead_paper", "dead_large", "score_paper_untrained", "score_large_untrained",
            "null_paper", "null_large", "null_paper_untrained", "null_large_untrained")
QUICK_WARNING = ("NOT COMPARABLE WITH THE PAPER: --quick trains for fewer epochs on fewer images and attacks "
                 "with fewer rounds; the paper's numbers are printed beside ours only as a reference.")
#: The scores whose rank correlations with accuracy are reported (trained and the control).
RANKED = ("score_paper", "score_large", "score_paper_untrained", "score_large_untrained")
#: Probe sizes of the probe-size curve (None: the whole test split).
CURVE_SIZES: tuple[int | None, ...] = (10, 30, 100, 300, 1000, None)


@dataclass
class Run:
    """Everything measured: ``records`` one dict per (seed, framework, model), ``pairs`` one per
    (seed, framework, MLP pair). ``frameworks``: who trained the MLPs (the CNN is always torch's)."""

    dataset: str
    settings: Settings
    seeds: list[int]
    frameworks: list[str]
    sizes: dict[str, int]
    records: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    threads: int = 1


def run(dataset: str, settings: Settings, seeds: list[int], *, frameworks: Sequence[str] = ("torch",),
        progress: bool = True) -> Run:
    """Train and measure everything for each seed. With several MLP frameworks, each seed's CNN
    and adversarial images are made once and shared: the frameworks' MLPs differ only in who
    trained them."""
    from tqdm import tqdm

    start = time.perf_counter()
    data = load_split(dataset, settings)
    attack_n = min(settings.attack_limit or len(data.x_test), len(data.x_test))
    result = Run(dataset, settings, seeds, list(frameworks), {
        "train": len(data.x_train), "test": len(data.x_test), "attack": attack_n,
        "paper_probe": min(settings.paper_probe, len(data.x_test)),
        "large_probe": min(settings.large_probe, len(data.x_test))})
    steps = (settings.cnn_epochs + (settings.surrogate_epochs or settings.cnn_epochs) + settings.attack_rounds
             + (len(MLP_SHAPES) * 2 + len(PAIRS)) * len(frameworks))
    bar = tqdm(total=steps * len(seeds), desc=f"mnist-family {dataset}", unit="step", leave=False,
               disable=not (progress and sys.stderr.isatty()))
    try:
        for seed in seeds:
            records, pairs = _one_seed(data, settings, seed, result.frameworks, attack_n, bar)
            result.records += records
            result.pairs += pairs
    finally:
        bar.close()
    result.seconds = time.perf_counter() - start
    result.threads = torch.get_num_threads()
    return result


def _one_seed(data: Any, settings: Settings, seed: int, frameworks: list[str], attack_n: int,
              bar: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    base = seed * SEED_STRIDE

    def tick(_step: int = 0) -> None:
        bar.update()

    def step(text: str) -> None:
        bar.set_postfix_str(f"seed {seed}: {text}")

    step("CNN")
    cnn = torch_cnn("cnn", data, settings, base + 10, on_epoch=tick)
    step("surrogate and FGSM rounds")
    attack = _adversarial(data, settings, base, attack_n, tick)
    records = [{"seed": seed, "framework": "torch", "model": "cnn", "hidden": "2 conv blocks",
                "accuracy": cnn.accuracy, **_attacked_accuracy(cnn, attack)}]
    pairs = []
    for framework in frameworks:
        mlp_records, mlp_pairs = _mlps(data, settings, seed, framework, cnn, attack, tick, step)
        records += mlp_records
        pairs += mlp_pairs
    return records, pairs


def _mlps(data: Any, settings: Settings, seed: int, framework: str, cnn: TrainedModel, attack: Attack,
          tick: Callable[[], None], step: Callable[[str], None]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One framework's five MLPs of one seed: accuracy, scores to the CNN (trained and at
    initialisation), FC<->FC scores, accuracy under the attack."""
    base, trainer = seed * SEED_STRIDE, MLP_TRAINERS[framework]
    mlps = []
    for k, (name, hidden) in enumerate(MLP_SHAPES.items()):
        step(f"{framework} {name}")
        mlps.append(trainer(name, hidden, data, settings, base + k))
        tick()
    key = {"seed": seed, "framework": framework}
    records = {m.name: key | {"model": m.name, "hidden": MLP_SHAPES[m.name], "accuracy": m.accuracy}
               for m in mlps}
    x_test = probe_images(data, settings, seed)
    step(f"{framework} scores")
    for m in mlps:
        records[m.name].update(_scores_to_cnn(m, cnn, x_test, settings, ""))
        records[m.name].update(_curve(m, cnn, x_test, settings, ""))
        records[m.name].update(_attacked_accuracy(m, attack))
        tick()
    for name, values in _untrained_scores(data, settings, base, trainer, x_test).items():
        records[name].update(values)
    pairs = []
    for a, b in itertools.combinations(mlps, 2):
        res = network_score(a, b, x_test)
        pairs.append(key | {"pair": f"{a.name}-{b.name}", "a_to_b": res.score.a_to_b,
                            "b_to_a": res.score.b_to_a, "symmetric": res.score.symmetric})
        tick()
    return list(records.values()), pairs


def probe_images(data: Any, settings: Settings, seed: int) -> np.ndarray:
    """What the models are compared on: the test images (``probe="test"``), or uniform noise in
    [0, 1) of the same shape (``probe="noise"``: the Fashion-MNIST notebooks' ``torch.rand``
    probe, first 10 for FC->CNN, all for FC<->FC), seeded with ``seed``."""
    if settings.probe == "noise":
        return np.random.default_rng(seed).random(tuple(data.x_test.shape), dtype=np.float32)
    return np.asarray(data.x_test.numpy())


def _scores_to_cnn(m: TrainedModel, cnn: TrainedModel, x_test: np.ndarray, settings: Settings,
                   suffix: str) -> dict[str, Any]:
    """FC->CNN scores on the paper's probe and the large one, the symmetric scores, and the
    MLP's constant (dead) neurons on each probe."""
    out: dict[str, Any] = {}
    for tag, n in (("paper", settings.paper_probe), ("large", settings.large_probe)):
        res = network_score(m, cnn, x_test[:n])
        out |= {f"score_{tag}{suffix}": res.score.a_to_b, f"sym_{tag}{suffix}": res.score.symmetric,
                f"dead_{tag}{suffix}": sum(lr.dead for lr in res.layers_a),
                f"null_{tag}{suffix}": null_mean(m, cnn, x_test[:n], settings.null_permutations)}
    return out


def null_mean(a: TrainedModel, b: TrainedModel, images: np.ndarray, permutations: int, seed: int = 0) -> float:
    """The mean A->B score when B sees the probe in a shuffled order (``permutations`` seeded
    shuffles): what the score is when the two networks' neurons are unrelated across samples.
    (neurocorr's own ``permutations`` option gives the null of the symmetric score; the
    paper's tables are A->B.)"""
    if permutations < 1:
        return math.nan
    rng = np.random.default_rng(seed)
    return float(np.mean([compare(a.model, b.model, images, probe_b=images[rng.permutation(len(images))],
                                  neurons="position", layers_a=a.layers, layers_b=b.layers,
                                  depth_penalty="paper").score.a_to_b for _ in range(permutations)]))


def _untrained_scores(data: Any, settings: Settings, base: int, trainer: Callable[..., TrainedModel],
                      x_test: np.ndarray) -> dict[str, dict[str, float]]:
    """The chance level: each MLP at its initialisation (same seed, 0 epochs) against the CNN at
    its initialisation. What of the score is there before any learning."""
    untrained = dataclasses.replace(settings, mlp_epochs=0, cnn_epochs=0)
    cnn0 = torch_cnn("cnn", data, untrained, base + 10)
    out = {}
    for k, (name, hidden) in enumerate(MLP_SHAPES.items()):
        m0 = trainer(name, hidden, data, untrained, base + k)
        scores = _scores_to_cnn(m0, cnn0, x_test, settings, "_untrained")
        out[name] = {key: v for key, v in scores.items() if key.startswith(("score_", "null_"))}
        out[name] |= _curve(m0, cnn0, x_test, settings, "_untrained")
    return out


def curve_sizes(settings: Settings, test: int) -> list[int]:
    """The probe sizes of the curve that this test split allows (the whole split last)."""
    if not settings.curve:
        return []
    return sorted({min(n or test, test) for n in CURVE_SIZES})


def _curve(m: TrainedModel, cnn: TrainedModel, x_test: np.ndarray, settings: Settings,
           suffix: str) -> dict[str, float]:
    """The A->B score on the first n test images, for each n of the probe-size curve."""
    return {f"curve_{n}{suffix}": network_score(m, cnn, x_test[:n]).score.a_to_b
            for n in curve_sizes(settings, len(x_test))}


@dataclass
class Attack:
    """The first ``attack_n`` test images, clean and after the transfer attack, with labels."""

    clean: np.ndarray
    adversarial: np.ndarray
    labels: np.ndarray
    surrogate_accuracy: float


def _adversarial(data: Any, settings: Settings, base: int, attack_n: int, tick: Callable[[int], None]) -> Attack:
    """The surrogate CNN's transfer attack on the first ``attack_n`` test images (``paper``:
    the notebook's loop; else a surrogate trained on the training set, refit as ``refit``).
    ``surrogate_accuracy``: the surrogate's test accuracy (NaN for ``paper``: never trained on
    the training set)."""
    x_att, y_att = data.x_test[:attack_n], data.y_test[:attack_n]
    if settings.attack == "paper":
        for _ in range(settings.surrogate_epochs or settings.cnn_epochs):  # the progress bar's steps
            tick(0)
        x_paper = paper_attack(x_att, y_att, build=lambda: cnn_like(data, settings), rounds=settings.attack_rounds,
                               eps=settings.attack_eps, epochs=settings.attack_epochs, lr=settings.cnn_lr,
                               batch_size=settings.batch_size, seed=base + 20, on_round=tick)
        return Attack(x_att.numpy(), x_paper.numpy(), y_att.numpy(), math.nan)
    surrogate = torch_cnn("surrogate", data, settings, base + 20, epochs=settings.surrogate_epochs,
                          on_epoch=tick)
    assert isinstance(surrogate.model, torch.nn.Module)
    x_adv = transfer_attack(surrogate.model, x_att, y_att, rounds=settings.attack_rounds,
                            eps=settings.attack_eps, refit=settings.refit, refit_epochs=settings.refit_epochs,
                            lr=settings.cnn_lr, batch_size=settings.batch_size, seed=base + 30,
                            build=lambda: cnn_like(data, settings), on_round=tick).numpy()
    return Attack(x_att.numpy(), x_adv, y_att.numpy(), surrogate.accuracy)


def _attacked_accuracy(m: TrainedModel, attack: Attack) -> dict[str, float]:
    """Accuracy on the attacked images, clean and after the attack."""
    return {"attack_clean": float((m.predict(attack.clean) == attack.labels).mean()),
            "attacked": float((m.predict(attack.adversarial) == attack.labels).mean()),
            "surrogate_accuracy": attack.surrogate_accuracy}


def network_score(a: TrainedModel, b: TrainedModel, images: np.ndarray) -> Comparison:
    """The paper's network score of ``a`` against ``b`` over ``images``: Pearson |r| between
    every neuron pair (conv outputs in position view: one neuron per channel and position),
    best match per neuron, divided by (layer-depth difference + 1), constant neurons 0."""
    return compare(a.model, b.model, images, neurons="position", layers_a=a.layers, layers_b=b.layers,
                   depth_penalty="paper")


def summarise(result: Run) -> dict[str, Any]:
    """Mean +- sd per framework and model and per pair, rank correlations per seed, the
    paper's claims, and (several frameworks) each one's agreement with torch's run."""
    paper = PAPER.get(result.dataset, {})
    table = []
    for framework, model in [*((f, m) for f in result.frameworks for m in MLP_SHAPES), ("torch", "cnn")]:
        rows = [r for r in result.records if r["framework"] == framework and r["model"] == model]
        row: dict[str, Any] = {"framework": framework, "model": model, "hidden": rows[0]["hidden"]}
        for key in MEASURES:
            row[f"{key}_mean"], row[f"{key}_sd"] = mean_sd(float(r.get(key, math.nan)) for r in rows)
        for key in ("accuracy", "score_to_cnn", "attack_clean", "attacked", "score_to_cnn_noise_probe"):
            row[f"paper_{key}"] = paper.get(key, {}).get(model, math.nan)
        table.append(row)
    pairs = []
    for framework, pair in itertools.product(result.frameworks, PAIRS):
        rows = [p for p in result.pairs if p["framework"] == framework and p["pair"] == pair]
        entry: dict[str, Any] = {"framework": framework, "pair": pair}
        for key in ("a_to_b", "b_to_a", "symmetric"):
            entry[f"{key}_mean"], entry[f"{key}_sd"] = mean_sd(p[key] for p in rows)
        entry["paper"] = paper.get("fc_pairs", {}).get(pair, math.nan)
        pairs.append(entry)
    return {"table": table, "fc_pairs": pairs, "rank_correlations": _rank_correlations(result),
            "probe_curve": _curve_table(result),
            "claims": {f: _claims(result, f) for f in result.frameworks},
            "agreement_rule": AGREEMENT_RULE,
            "agreement": agreement(result.records, result.frameworks, list(MLP_SHAPES))}


def _per_seed(result: Run, seed: int, framework: str) -> dict[str, dict[str, Any]]:
    return {r["model"]: r for r in result.records
            if r["seed"] == seed and r["framework"] == framework and r["model"] in MLP_SHAPES}


def _rank_correlations(result: Run) -> list[dict[str, Any]]:
    """Rank correlations of each score (trained and at initialisation, both probes) with clean
    accuracy, attacked accuracy and the accuracy drop under attack (the paper: higher score,
    smaller drop), over all five MLPs and without net5. Per seed: Spearman's rho and its exact
    two-sided permutation p (all n! orders). Pooled: the mean of the per-seed rho (and tau)
    tested against shuffles of the models within each seed (exact), so a whole seed being better
    or worse cannot make a correlation."""
    targets: dict[str, Callable[[dict[str, Any]], float]] = {
        "accuracy": lambda r: r["accuracy"], "attacked": lambda r: r["attacked"],
        "drop": lambda r: r["attack_clean"] - r["attacked"]}
    model_sets = {"all": list(MLP_SHAPES), "without net5": [m for m in MLP_SHAPES if m != "net5"]}
    out = []
    for framework, score, (target, get), (subset, models) in itertools.product(
            result.frameworks, RANKED, targets.items(), model_sets.items()):
        xs, ys, seeds, rhos, ps = [], [], [], [], []
        for seed in result.seeds:
            rows = _per_seed(result, seed, framework)
            x = [float(rows[m].get(score, math.nan)) for m in models if m in rows]
            y = [float(get(rows[m])) for m in models if m in rows]
            finite = not any(math.isnan(v) for v in x + y)
            rhos.append(stats.correlation(x, y) if finite else math.nan)
            ps.append(stats.permutation_p(x, y) if finite else math.nan)
            if finite:
                xs += x
                ys += y
                seeds += [seed] * len(x)
        pooled = stats.pooled_within(xs, ys, seeds) if xs else None
        pooled_tau = stats.pooled_within(xs, ys, seeds, "kendall") if xs else None
        out.append({"framework": framework, "score": score, "against": target, "models": subset, **spread(rhos),
                    "per_seed_p": ps,
                    "pooled_rho": pooled.value if pooled else math.nan, "pooled_p": pooled.p if pooled else math.nan,
                    "pooled_tau": pooled_tau.value if pooled_tau else math.nan,
                    "pooled_tau_p": pooled_tau.p if pooled_tau else math.nan,
                    "pooled_exact": bool(pooled and pooled.exact)})
    return out


def _curve_table(result: Run) -> list[dict[str, Any]]:
    """The probe-size curve: mean +- sd over seeds of each MLP's A->B score, trained and at
    initialisation, per probe size."""
    rows = []
    for framework, model in itertools.product(result.frameworks, MLP_SHAPES):
        mine = [r for r in result.records if r["framework"] == framework and r["model"] == model]
        for n in curve_sizes(result.settings, result.sizes["test"]):
            row: dict[str, Any] = {"framework": framework, "model": model, "probe": n}
            for tag, suffix in (("trained", ""), ("untrained", "_untrained")):
                row[f"{tag}_mean"], row[f"{tag}_sd"] = mean_sd(float(r.get(f"curve_{n}{suffix}", math.nan))
                                                               for r in mine)
            row["gap"] = row["trained_mean"] - row["untrained_mean"]
            rows.append(row)
    return rows


def _claims(result: Run, framework: str) -> dict[str, dict[str, int]]:
    """In how many seeds net5 is the lowest of the five MLPs by each measure."""
    checks = {"net5_lowest_score_paper": "score_paper", "net5_lowest_score_large": "score_large",
              "net5_lowest_accuracy": "accuracy", "net5_lowest_attacked": "attacked"}
    out = {}
    for claim, key in checks.items():
        hits = 0
        for seed in result.seeds:
            rows = _per_seed(result, seed, framework)
            hits += min(rows, key=lambda m: rows[m][key]) == "net5"
        out[claim] = {"seeds": len(result.seeds), "holds": hits}
    return out


def render(result: Run, summary: dict[str, Any]) -> dict[str, bytes | str]:
    """The output files by name: table.csv, fc_pairs.csv, rank_correlations.csv,
    results.json, score_vs_accuracy.png, score_vs_attacked.png, and with MLPs of several
    frameworks agreement.csv."""
    ranks = [{k: v for k, v in r.items() if k not in ("per_seed", "per_seed_p")}
             | {"per_seed": r["per_seed"], "per_seed_p": r["per_seed_p"]} for r in summary["rank_correlations"]]
    document = {
        "experiment": "mnist-family", "dataset": result.dataset, "seeds": result.seeds,
        "mlp_frameworks": result.frameworks, "settings": result.settings.to_dict(), "sizes": result.sizes,
        "seconds": result.seconds, "threads": result.threads, **summary, "per_seed": result.records,
        "fc_pairs_per_seed": result.pairs,
        "paper": PAPER.get(result.dataset, {}), "versions": get_plugin_manager().versions(),
        "torch": torch.__version__,
    }
    files: dict[str, bytes | str] = {
        "table.csv": to_csv(summary["table"]), "fc_pairs.csv": to_csv(summary["fc_pairs"]),
        "rank_correlations.csv": to_csv(ranks), "results.json": to_json(document),
        "score_vs_accuracy.png": _scatter(result, summary, "accuracy", "test accuracy"),
        "score_vs_attacked.png": _scatter(result, summary, "attacked", "accuracy after transfer attack")}
    if summary["agreement"]:
        files["agreement.csv"] = to_csv(summary["agreement"])
    if summary["probe_curve"]:
        files["probe_curve.csv"] = to_csv(summary["probe_curve"])
    return files


def _scatter(result: Run, summary: dict[str, Any], key: str, label: str) -> bytes:
    """One point per MLP (and framework, when there are several) and seed."""
    several = len(result.frameworks) > 1
    panels = []
    for probe in ("paper", "large"):
        rhos = [f"{r['framework'] + ' ' if several else ''}{fmt(r['mean'], r['sd'], 2)}"
                for r in summary["rank_correlations"]
                if r["score"] == f"score_{probe}" and r["against"] == key and r["models"] == "all"]
        points = [(f"{m} {f}" if several else m, f, m) for f in result.frameworks for m in MLP_SHAPES]

        def values(measure: str, framework: str, model: str) -> list[float]:
            return [r[measure] for r in result.records if r["framework"] == framework and r["model"] == model]

        panels.append(figures.Panel(
            title=f"probe: first {result.sizes[f'{probe}_probe']} test images; Spearman rho {', '.join(rhos)}",
            xlabel="FC->CNN network score", ylabel=label,
            x={name: values(f"score_{probe}", f, m) for name, f, m in points},
            y={name: values(key, f, m) for name, f, m in points}))
    return figures.scatter(panels, f"{result.dataset}: score vs {label} "
                           f"({len(result.seeds)} seeds; faint: each seed, bars: mean +- sd)")


def report(result: Run, summary: dict[str, Any]) -> str:
    """The terminal text: accuracies, FC->CNN scores, FC<->FC scores, rank correlations,
    claims, and the frameworks' agreement with torch."""
    s, n, st = result.sizes, len(result.seeds), result.settings
    lines = [f"neurocorr reproduce mnist-family: {result.dataset}, {n} seed(s) {result.seeds}, "
             f"{s['train']} train / {s['test']} test images, MLPs in {', '.join(result.frameworks)} "
             f"(the CNN in torch), {result.seconds:.0f} s on {result.threads} torch thread(s); epochs: "
             f"MLPs {st.mlp_epochs}, CNN {st.cnn_epochs}", ""]
    if st.quick:
        lines += [QUICK_WARNING, ""]
    if st.probe == "noise":
        lines += ["Probe: uniform noise of the test split's shape (the Fashion-MNIST notebooks' probe), not test "
                  "images: every score below is on noise.", ""]
    eps = f"{st.attack_eps * 255:.0f}/255"
    how = (f"attack 'paper': one surrogate CNN trained further for {st.attack_epochs} epochs on the attacked "
           "images before each round, double-softmax FGSM" if st.attack == "paper" else
           f"attack '{st.attack}': surrogate CNN {st.surrogate_epochs or st.cnn_epochs} epoch(s) on the training "
           f"set, refit {st.refit} for {st.refit_epochs} epoch(s) per round")
    lines += _table(summary["table"], "Test accuracy, and accuracy on the attacked images before and "
                    f"after {st.attack_rounds} FGSM rounds of eps {eps} ({s['attack']} test images; {how})",
                    [("test accuracy", "accuracy"), ("clean", "attack_clean"), ("attacked", "attacked")],
                    [("paper acc", "paper_accuracy"), ("paper clean", "paper_attack_clean"),
                     ("paper attacked", "paper_attacked")])
    mlps = [r for r in summary["table"] if r["model"] != "cnn"]
    lines += _table(mlps, "FC->CNN network score (|r|, paper depth penalty, CNN conv "
                    f"blocks in position view) on the first {s['paper_probe']} test images (the paper's "
                    f"probe) and the first {s['large_probe']}; 'untrained': the same networks at "
                    "initialisation, the chance level",
                    [(f"score ({s['paper_probe']})", "score_paper"), ("null", "null_paper"),
                     ("untrained", "score_paper_untrained"), (f"score ({s['large_probe']})", "score_large"),
                     ("null", "null_large"), ("untrained", "score_large_untrained")],
                    [("paper score", "paper_score_to_cnn")])
    lines += [f"'null': the mean A->B score over {st.null_permutations} shuffles of the CNN's probe order "
              "(the networks' neurons unrelated across samples)", ""]
    head = f"{'MLPs':<6} {'pair':<10} {'A->B':>17} {'B->A':>17} {'symmetric':>17} | {'paper':>6}"
    lines += [f"FC<->FC network scores on all {s['test']} test images", head, "-" * len(head)]
    for p in summary["fc_pairs"]:
        paper_score = "-" if math.isnan(p["paper"]) else f"{p['paper']:.4f}"
        lines.append(f"{p['framework']:<6} {p['pair']:<10} " + " ".join(f"{fmt(p[f'{k}_mean'], p[f'{k}_sd']):>17}"
                                                                      for k in ("a_to_b", "b_to_a", "symmetric"))
                     + f" | {paper_score:>6}")
    lines += ["", "Spearman rho over the MLPs, per seed (mean ± sd; per seed: rho and its exact two-sided "
              "permutation p), and pooled: the mean per-seed rho, p from shuffles within each seed:"]
    for r in summary["rank_correlations"]:
        lines.append(f"  {r['framework']:<6} {r['score']:<22} vs {r['against']:<9} {r['models']:<12} "
                     f"{fmt(r['mean'], r['sd'], 2):>12}  per seed: "
                     + " ".join("nan" if math.isnan(v) else f"{v:+.2f} (p {p:.2f})"
                                for v, p in zip(r["per_seed"], r["per_seed_p"], strict=True))
                     + f"  pooled {r['pooled_rho']:+.2f} p {r['pooled_p']:.3f}")
    if summary["probe_curve"]:
        lines += ["", "Probe-size curve: A->B score on the first n test images, trained / at initialisation "
                  "(mean over seeds)"]
        for model in dict.fromkeys(c["model"] for c in summary["probe_curve"]):
            mine = [c for c in summary["probe_curve"] if c["model"] == model and c["framework"] == result.frameworks[0]]
            lines.append(f"  {model}: " + "  ".join(f"n={c['probe']} {c['trained_mean']:.3f}/{c['untrained_mean']:.3f}"
                                                     for c in mine))
    lines.append("")
    for framework, claims in summary["claims"].items():
        lines.append(f"{framework}: net5 is the lowest of the five MLPs, in seeds: "
                     + ", ".join(f"{k.removeprefix('net5_lowest_')} {v['holds']}/{v['seeds']}"
                                 for k, v in claims.items()))
    if summary["agreement"]:
        lines += ["", *_agreement_table(summary), *verdict_lines(summary["agreement"])]
    return "\n".join(lines)


def _agreement_table(summary: dict[str, Any]) -> list[str]:
    """Each non-torch framework's mean against torch's, per MLP and measure."""
    head = (f"{'MLPs':<6} {'model':<6} {'measure':<12} {'torch':>17} {'this framework':>17} {'diff':>8} "
            f"{'2*max sd':>8} {'t':>6}  agrees")
    lines = ["Across frameworks: the same CNN and attacked images, the MLPs trained by each framework; "
             f"agreement: {summary['agreement_rule']} (t: the difference over its standard error)",
             head, "-" * len(head)]
    for r in summary["agreement"]:
        verdict = "-" if r["agrees"] is None else ("yes" if r["agrees"] else "NO")
        t = "-" if math.isnan(r["t"]) else f"{r['t']:+.1f}"
        bound = "-" if math.isnan(r["bound"]) else f"{r['bound']:.4f}"
        lines.append(f"{r['framework']:<6} {r['model']:<6} {r['measure']:<12} "
                     f"{fmt(r['torch_mean'], r['torch_sd']):>17} {fmt(r['mean'], r['sd']):>17} "
                     f"{r['diff']:>+8.4f} {bound:>8} {t:>6}  {verdict}")
    return [*lines, ""]


def _table(rows: list[dict[str, Any]], title: str, ours: list[tuple[str, str]],
           paper: list[tuple[str, str]]) -> list[str]:
    """A fixed-width table: framework, model, our columns (mean ± sd), then the paper's numbers."""
    head = (f"{'MLPs':<6} {'model':<6} " + " ".join(f"{label:>17}" for label, _ in ours) + " | "
            + " ".join(f"{label:>{max(6, len(label))}}" for label, _ in paper))
    lines = [title, head, "-" * len(head)]
    for row in rows:
        cells = [fmt(row[f"{key}_mean"], row[f"{key}_sd"]) for _, key in ours]
        refs = ["-" if math.isnan(row[key]) else f"{row[key]:.4f}" for _, key in paper]
        widths = [max(6, len(label)) for label, _ in paper]
        lines.append(f"{row['framework']:<6} {row['model']:<6} " + " ".join(f"{c:>17}" for c in cells) + " | "
                     + " ".join(f"{r:>{w}}" for r, w in zip(refs, widths, strict=True)))
    return [*lines, ""]
