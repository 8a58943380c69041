"""The universal-neurons experiment of Gurnee et al. 2024 (arXiv 2401.12181), on tiny GPT-2s trained here.

Several GPT-2-style language models differ only in their seed (initial weights and the order of
their training windows). For each MLP neuron (``block*.mlp.act``, post-GELU) of model A, over every
real token of a held-out probe (the token view, padding masked):

- ``max_corr``: the largest Pearson r with any MLP neuron of model B, in any layer;
- ``baseline``: the same against B with its MLP neuron basis randomly rotated
  (:mod:`neurocorr_transformers.rotation`);
- ``excess = max_corr - baseline``; Gurnee et al. average it over the other seeds (their rho) and call
  a neuron universal when it exceeds 0.5.

Every correlation comes from :func:`neurocorr_core.compare` with the ``hf`` provider
(``neurons="token"``, ``matching="max"``, ``depth_penalty="none"``, signed r), so the experiment is
also a test that neurocorr does this job out of the box. The seed paper's network score (|r|, depth
penalty, symmetric) is reported for the same pairs.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from neurocorr_core import compare

from .lm import (
    LMSize,
    build_lm,
    eval_loss,
    held_out,
    sequence_probe,
    stdlib_docstrings,
    token_stream,
    train_lm,
    train_tokenizer,
)
from .provider import HFModel

LAYERS = "block*.mlp.act"
#: compare() options of Gurnee et al.: every real token a sample, each neuron's best signed r with any
#: MLP neuron of the other model in any layer, no depth penalty.
GURNEE: dict[str, Any] = {"neurons": "token", "layers_a": LAYERS, "layers_b": LAYERS, "depth_penalty": "none",
                          "absolute": False}
#: Gurnee et al. 2024, Section 3 (arXiv 2401.12181): share of MLP neurons with excess correlation
#: rho > 0.5 over 5 seeds and 100M tokens of the Pile (docs/transformers.md cites the numbers).
PUBLISHED = {"GPT2-small (12 x 3072)": 4.16, "GPT2-medium (24 x 4096)": 1.23, "Pythia-160M (12 x 3072)": 1.26}


@dataclass(frozen=True)
class Setting:
    """One run's size: the models, their training, the corpus and the probe."""

    size: LMSize = field(default_factory=LMSize)
    seeds: int = 3
    steps: int = 300
    batch: int = 16
    lr: float = 3e-3
    corpus_chars: int | None = 400_000
    probe_texts: int = 200
    threshold: float = 0.5


QUICK = Setting(steps=200, corpus_chars=250_000, probe_texts=150)
FULL = Setting(size=LMSize(layers=4, width=128, heads=4, context=64, vocab=2048), steps=1200, batch=16,
               corpus_chars=None, probe_texts=600)


def run(setting: Setting, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the models, compare every ordered pair and its rotated baseline; the results as plain data."""
    import torch

    start = time.perf_counter()
    texts = stdlib_docstrings(setting.corpus_chars)
    train_texts = [t for t in texts if not held_out(t)]
    probe_texts = [t for t in texts if held_out(t)][:setting.probe_texts]
    size = setting.size
    tokenizer = train_tokenizer(train_texts, size.vocab)
    stream = token_stream(tokenizer, train_texts)
    probe = sequence_probe(tokenizer, probe_texts, size.context, name="stdlib docstrings (held out)")
    tokens = int(probe.data[:, 1].sum())
    say(f"corpus: {len(texts)} stdlib docstrings, {sum(map(len, texts)):,} chars; training stream "
        f"{len(stream):,} tokens; probe {len(probe)} held-out docstrings, {tokens:,} real tokens")
    models, losses = [], []
    for seed in range(setting.seeds):
        model = build_lm(size, seed, vocab=len(tokenizer))
        train_loss = train_lm(model, stream, steps=setting.steps, seed=seed, batch=setting.batch, lr=setting.lr)
        losses.append({"seed": seed, "train_loss": train_loss, "probe_loss": eval_loss(model, probe)})
        models.append(model)
        say(f"seed {seed}: trained {setting.steps} steps, loss {train_loss:.3f} (probe {losses[-1]['probe_loss']:.3f})"
            f" [{time.perf_counter() - start:.0f} s]")
    torch.set_grad_enabled(False)
    result = correlate(models, probe, setting.threshold, say)
    result.update(setting=_plain(setting), corpus={"texts": len(texts), "chars": sum(map(len, texts)),
                  "train_tokens": len(stream), "probe_sequences": len(probe), "probe_tokens": tokens},
                  losses=losses, seconds=time.perf_counter() - start)
    return result


def correlate(models: Sequence[Any], probe: Any, threshold: float = 0.5,
              say: Callable[[str], None] = print) -> dict[str, Any]:
    """Per-neuron max correlation and rotated baseline for every ordered pair of ``models`` (GPT-2s),
    the universal fractions per layer and the seed paper's network score per pair."""
    from .rotation import rotate_mlp_neurons

    rotated = [rotate_mlp_neurons(m, seed=10_000 + i)[0] for i, m in enumerate(models)]
    max_corr: dict[tuple[int, int], np.ndarray] = {}
    baseline: dict[tuple[int, int], np.ndarray] = {}
    network: dict[tuple[int, int], float] = {}
    widths: list[int] = []
    for a, b in itertools.combinations(range(len(models)), 2):
        real = compare(HFModel(models[a]), HFModel(models[b]), probe, **GURNEE)
        max_corr[a, b], max_corr[b, a] = real.value_a, real.value_b
        widths = [lr.neurons for lr in real.layers_a]
        paper = compare(HFModel(models[a]), HFModel(models[b]), probe, neurons="token", layers_a=LAYERS,
                        layers_b=LAYERS)
        network[a, b] = paper.score.symmetric
        for x, y in ((a, b), (b, a)):
            baseline[x, y] = compare(HFModel(models[x]), HFModel(rotated[y]), probe, **GURNEE).value_a
        say(f"seeds {a}-{b}: mean max r {np.mean(max_corr[a, b]):.3f}/{np.mean(max_corr[b, a]):.3f}, "
            f"rotated baseline {np.mean(baseline[a, b]):.3f}/{np.mean(baseline[b, a]):.3f}, "
            f"network score {network[a, b]:.4f}")
    result = summarize(max_corr, baseline, network, widths, threshold)
    result["per_neuron"] = {"max_corr": {f"{a}-{b}": v for (a, b), v in max_corr.items()},
                            "baseline": {f"{a}-{b}": v for (a, b), v in baseline.items()}}
    return result


def summarize(max_corr: dict[tuple[int, int], np.ndarray], baseline: dict[tuple[int, int], np.ndarray],
              network: dict[tuple[int, int], float], widths: Sequence[int], threshold: float) -> dict[str, Any]:
    """Per layer: mean max r, mean baseline, the share of universal neurons per ordered pair (mean,
    min, max over pairs) and by Gurnee's rule per model (excess averaged over the other seeds)."""
    bounds = np.cumsum([0, *widths])
    seeds = sorted({a for a, _ in max_corr})
    excess = {pair: max_corr[pair] - baseline[pair] for pair in max_corr}
    rho = {a: np.mean([excess[a, b] for b in seeds if b != a], axis=0) for a in seeds}
    layers = []
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        pairs = [100 * float(np.mean(excess[p][lo:hi] > threshold)) for p in sorted(excess)]
        per_model = [100 * float(np.mean(rho[a][lo:hi] > threshold)) for a in seeds]
        layers.append({"layer": f"block{i}.mlp.act", "neurons": int(hi - lo),
                       "max_corr": float(np.mean([max_corr[p][lo:hi].mean() for p in max_corr])),
                       "baseline": float(np.mean([baseline[p][lo:hi].mean() for p in baseline])),
                       "universal_pct_pairs": _spread(pairs), "universal_pct_gurnee": _spread(per_model),
                       "excess_mean": float(np.mean([rho[a][lo:hi] for a in seeds])),
                       "excess_p99": float(np.percentile(np.concatenate([rho[a][lo:hi] for a in seeds]), 99))})
    overall_pairs = [100 * float(np.mean(excess[p] > threshold)) for p in sorted(excess)]
    overall_models = [100 * float(np.mean(rho[a] > threshold)) for a in seeds]
    scores = list(network.values())
    return {"threshold": threshold, "layers": layers,
            "overall": {"universal_pct_pairs": _spread(overall_pairs), "universal_pct_gurnee": _spread(overall_models),
                        "max_corr": float(np.mean([v.mean() for v in max_corr.values()])),
                        "excess_mean": float(np.mean([rho[a] for a in seeds])),
                        "excess_p99": float(np.percentile(np.concatenate([rho[a] for a in seeds]), 99)),
                        "baseline": float(np.mean([v.mean() for v in baseline.values()]))},
            "network_score": {**_spread(scores), "pairs": {f"{a}-{b}": s for (a, b), s in network.items()}},
            "published_universal_pct": PUBLISHED}


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def _plain(setting: Setting) -> dict[str, Any]:
    return asdict(setting)


def table(result: dict[str, Any]) -> str:
    """The per-layer results as a Markdown table, with the published figures beneath."""
    def pct(s: dict[str, float]) -> str:
        return f"{s['mean']:.1f} [{s['min']:.1f}, {s['max']:.1f}]"

    rows = ["| layer | neurons | mean max r | mean rotated baseline | mean rho | 99th pct rho | "
            "universal % per pair [min, max] | universal % (rho > threshold) over seeds [min, max] |",
            "|---|---|---|---|---|---|---|---|"]
    for layer in [*result["layers"], {"layer": "all", **result["overall"],
                                      "neurons": sum(x["neurons"] for x in result["layers"])}]:
        rows.append(f"| {layer['layer']} | {layer['neurons']} | {layer['max_corr']:.3f} | {layer['baseline']:.3f} | "
                    f"{layer['excess_mean']:.3f} | {layer['excess_p99']:.3f} | "
                    f"{pct(layer['universal_pct_pairs'])} | {pct(layer['universal_pct_gurnee'])} |")
    net = result["network_score"]
    rows.append("")
    rows.append(f"network score (seed paper: |r|, depth penalty, symmetric), mean over seed pairs [min, max]: "
                f"{net['mean']:.4f} [{net['min']:.4f}, {net['max']:.4f}]")
    rows.append("published (Gurnee et al. 2024, rho > 0.5): " + ", ".join(
        f"{name} {value}%" for name, value in result["published_universal_pct"].items()))
    return "\n".join(rows)


def main(quick: bool, seeds: int | None = None, steps: int | None = None, out: str | None = None,
         threads: int | None = None, layers: int | None = None, width: int | None = None,
         say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the experiment (``quick``: the small setting) and write ``results.json`` and ``table.md``.
    ``threads``: torch's intra-op threads while it runs (1 is much faster on a shared, loaded machine:
    2 threads fighting other processes for 2 cores ran a training step 30x slower here)."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _main(quick, seeds, steps, out, layers, width, say)
    finally:
        torch.set_num_threads(before)


def _main(quick: bool, seeds: int | None, steps: int | None, out: str | None, layers: int | None,
          width: int | None, say: Callable[[str], None]) -> dict[str, Any]:
    setting = QUICK if quick else FULL
    if layers is not None:
        setting = replace(setting, size=replace(setting.size, layers=layers))
    if width is not None:
        setting = replace(setting, size=replace(setting.size, width=width))
    if seeds is not None:
        setting = replace(setting, seeds=seeds)
    if steps is not None:
        setting = replace(setting, steps=steps)
    result = run(setting, say)
    folder = Path(out or f"neurocorr-universal-neurons/{'quick' if quick else 'full'}")
    folder.mkdir(parents=True, exist_ok=True)
    arrays = result.pop("per_neuron")
    np.savez(folder / "per_neuron.npz", **{f"{kind}_{pair}": v for kind, d in arrays.items() for pair, v in d.items()})
    (folder / "results.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    (folder / "table.md").write_text(table(result) + "\n", encoding="utf-8")
    say(table(result))
    say(f"done in {result['seconds']:.0f} s; wrote results.json, table.md and per_neuron.npz in {folder}")
    return result
