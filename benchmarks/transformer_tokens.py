"""Token-level comparison of two GPT-2-style models against the bare work it cannot avoid.

Two GPT-2 models with random weights (seeded) are compared over a padded token probe with the
``token`` view, all blocks' MLP neurons (``block*.mlp.act``) of one against all of the other's
(Pearson, max matching, the paper's depth penalty). The baseline is the bare minimum: both models'
forward passes with hooks on the same modules, the real tokens gathered, and one float32 cross
GEMM of the centred activations (plus their sums of squares). Prints both times and their ratio::

    python benchmarks/transformer_tokens.py                      # small: well under a minute on 2 cores
    python benchmarks/transformer_tokens.py --layers 12 --width 768 --tokens 200000   # the issue's size

The default sizes (4 layers, width 128: 2,048 MLP neurons a side, about 8,000 real tokens) run in
seconds on a loaded 2-core machine; timings there are noisy, so read the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np


def build(seed: int, layers: int, width: int, positions: int) -> Any:
    import torch

    from neurocorr_transformers.provider import import_transformers

    t = import_transformers()
    torch.manual_seed(seed)
    config = t.GPT2Config(n_layer=layers, n_embd=width, n_head=max(1, width // 64), vocab_size=1000,
                          n_positions=positions, bos_token_id=0, eos_token_id=0)
    return t.GPT2Model(config).eval()


def bare(models: list[Any], ids: np.ndarray, mask: np.ndarray, batch: int) -> float:
    """Forward passes with hooks, real tokens gathered, one centred cross GEMM: seconds."""
    import torch

    start = time.perf_counter()
    sides = []
    for model in models:
        rows: list[np.ndarray] = []
        for lo in range(0, len(ids), batch):
            got: list[Any] = []
            handles = [b.mlp.act.register_forward_hook(lambda _m, _a, out, got=got: got.append(out))
                       for b in model.h]
            with torch.no_grad():
                model(input_ids=torch.from_numpy(ids[lo:lo + batch]),
                      attention_mask=torch.from_numpy(mask[lo:lo + batch]))
            for h in handles:
                h.remove()
            keep = torch.from_numpy(mask[lo:lo + batch].astype(bool))
            rows.append(torch.cat([g[keep] for g in got], dim=1).numpy())
        sides.append(np.concatenate(rows))
    x, y = (s - s.mean(axis=0) for s in sides)
    cross = x.T @ y  # the one GEMM every Pearson needs
    _ = (x * x).sum(axis=0), (y * y).sum(axis=0), cross.max(axis=1), cross.max(axis=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--tokens", type=int, default=8000, help="real tokens in the probe (about)")
    parser.add_argument("--length", type=int, default=64, help="padded sequence length")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    from neurocorr_core import compare
    from neurocorr_transformers import HFModel, token_probe

    rng = np.random.default_rng(0)
    lengths = rng.integers(args.length // 4, args.length + 1, 10**6)
    count = int(np.searchsorted(np.cumsum(lengths), args.tokens)) + 1
    ids = rng.integers(1, 1000, (count, args.length))
    mask = (np.arange(args.length)[None, :] < lengths[:count, None]).astype(np.int64)
    models = [build(seed, args.layers, args.width, args.length) for seed in (1, 2)]
    print(f"{args.layers} layers x {4 * args.width} MLP neurons a side; {count} sequences of <= {args.length} "
          f"tokens, {int(mask.sum())} real ({100 * (1 - mask.mean()):.0f}% padding)")

    base = bare(models, ids, mask, args.batch)
    start = time.perf_counter()
    result = compare(HFModel(models[0]), HFModel(models[1]), token_probe(ids, mask), neurons="token",
                     layers_a="block*.mlp.act", layers_b="block*.mlp.act", batch_size=args.batch)
    took = time.perf_counter() - start
    print(f"forward passes + GEMM (bare):  {base:7.2f} s")
    print(f"neurocorr compare, token view: {took:7.2f} s   (score {result.score.symmetric:.4f})")
    print(f"ratio: {took / base:.2f}x")


if __name__ == "__main__":
    main()
