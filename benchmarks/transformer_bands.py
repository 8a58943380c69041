"""All MLP neurons of two GPT-2-style models against all, in bands: memory bounded whatever the tokens.

Two GPT-2 models with random weights (seeded; built as benchmarks/transformer_tokens.py builds
them) are compared over a padded token probe under the ``token`` view, every block's MLP neurons
(``block*.mlp.act``) against all of the other's (Pearson, max matching, no depth penalty), with a
``memory_budget`` too small for the full matrices and for tiles (which keep every token's
activations): ``compare()`` counts the real tokens first (``HFProvider.rows``) and runs the probe
once per band of A's neurons (neurocorr_core/bands.py). Each run is a fresh process, so its CPU
time and peak RSS (ru_maxrss) are its own. Per token count, it prints the banded run (bands,
passes over the probe, CPU s, peak RSS), the same comparison without a budget (the full
matrices) and the largest difference of each neuron's best |r| from a naive float64 reference
(every real token's activations gathered, centred, normalised, one float64 GEMM)::

    python benchmarks/transformer_bands.py      # 4 layers x 128 (2,048 neurons a side), 1,000 and 3,000 tokens
    python benchmarks/transformer_bands.py --tokens 1000 3000 9000 --budget 48MB
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transformer_tokens import _cpu, build, probe, real_tokens, run  # the sibling benchmark's models, probe, runs


def naive(models: list[Any], ids: np.ndarray, mask: np.ndarray, batch: int, select: str) -> np.ndarray:
    """A's best |r| over B's neurons from every real token's activations, in float64 (memory grows
    with the tokens: a reference for small probes)."""
    sides = []
    for model in models:
        x = np.concatenate([r.astype(np.float64) for r in real_tokens(model, ids, mask, batch, select)])
        x -= x.mean(axis=0)
        sides.append(x / np.linalg.norm(x, axis=0))
    return np.abs(sides[0].T @ sides[1]).max(axis=1)


def neurocorr(models: list[Any], ids: np.ndarray, mask: np.ndarray, batch: int, select: str,
              budget: str | None) -> tuple[np.ndarray, int, dict[str, Any]]:
    from neurocorr_core import compare
    from neurocorr_transformers import HFModel, token_probe

    result = compare(HFModel(models[0]), HFModel(models[1]), token_probe(ids, mask), neurons="token",
                     layers_a=select, layers_b=select, batch_size=batch, depth_penalty="none",
                     memory_budget=budget)
    tiles = (result.config.get("tiles") or {}).get("a") or {}
    return np.asarray(result.value_a), result.samples, tiles


def child(args: argparse.Namespace) -> None:
    """One measured run in this fresh process: a JSON line with its CPU seconds, peak MB and bands."""
    ids, mask = probe(args.run_tokens, args.length)
    models = [build(seed, args.layers, args.width, args.length) for seed in (1, 2)]
    passes = [0]
    for model in models:  # count the forward passes over whole batches (the layer listing runs 2 samples)
        model.register_forward_pre_hook(lambda _m, a, kw: passes.__setitem__(0, passes[0] + (len(kw.get(
            "input_ids", a[0] if a else [])) > 2)), with_kwargs=True)
    start, cpu = time.perf_counter(), _cpu()
    tiles: dict[str, Any] = {}
    if args.run == "naive":
        best, samples = naive(models, ids, mask, args.batch, args.select), int(mask.sum())
    else:
        best, samples, tiles = neurocorr(models, ids, mask, args.batch, args.select,
                                         args.budget if args.run == "bands" else None)
    took, cpu = time.perf_counter() - start, _cpu() - cpu
    np.save(args.out, best)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"seconds": took, "cpu": cpu, "peak_mb": peak, "samples": samples, "sequences": len(ids),
                      "bands": tiles.get("bands", 0), "rows": tiles.get("rows"),
                      "passes": passes[0] / 2 / -(-len(ids) // args.batch)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--tokens", type=int, nargs="+", default=[1000, 3000], help="real tokens in the probe (about)")
    parser.add_argument("--select", default="block*.mlp.act", help="the layers of each side (a glob of layer names)")
    parser.add_argument("--budget", default="48MB", help="the banded run's memory_budget")
    parser.add_argument("--length", type=int, default=64, help="padded sequence length")
    parser.add_argument("--batch", type=int, default=64, help="sequences per batch")
    parser.add_argument("--tolerance", type=float, default=1e-5, help="largest allowed |best r - naive best r|")
    parser.add_argument("--run", choices=("naive", "full", "bands"), help=argparse.SUPPRESS)
    parser.add_argument("--run-tokens", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        child(args)
        return
    print(f"{args.layers} layers x {args.width} wide, layers {args.select!r} all against all; sequences of <= "
          f"{args.length} tokens, {args.batch} a batch; banded budget {args.budget}; {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f} at start", flush=True)
    print("CPU seconds (all threads) and peak RSS of each run (a fresh process); passes: over the probe, "
          "per model", flush=True)
    print(f"{'tokens':>7} {'seqs':>5} {'bands':>5} {'rows':>5} {'passes':>6} {'bands cpu':>9} {'bands MB':>8} "
          f"{'full cpu':>8} {'full MB':>7} {'naive cpu':>9} {'max|diff| bands':>15} {'full':>8}", flush=True)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for tokens in args.tokens:
            got = {m: run(args, m, tokens, Path(tmp, f"{m}.npy"), script=__file__, extra=["--budget", args.budget])
                   for m in ("naive", "full", "bands")}
            want = np.load(Path(tmp, "naive.npy"))
            diff = {m: float(np.abs(np.load(Path(tmp, f"{m}.npy")) - want).max()) for m in ("full", "bands")}
            if len({g["samples"] for g in got.values()}) != 1:
                raise SystemExit(f"the runs counted different tokens: {[g['samples'] for g in got.values()]}")
            b, f, n = got["bands"], got["full"], got["naive"]
            print(f"{b['samples']:>7} {b['sequences']:>5} {b['bands']:>5} {b['rows'] or '':>5} {b['passes']:>6.0f} "
                  f"{b['cpu']:>9.1f} {b['peak_mb']:>8.0f} {f['cpu']:>8.1f} {f['peak_mb']:>7.0f} {n['cpu']:>9.1f} "
                  f"{diff['bands']:>15.1e} {diff['full']:>8.1e}", flush=True)
            worst = max(worst, diff["bands"])
    print(f"load {os.getloadavg()[0]:.1f} at the end")
    if worst > args.tolerance:
        raise SystemExit(f"banded best |r| differs from the naive reference by {worst:.1e} > {args.tolerance:g}")


if __name__ == "__main__":
    main()
