"""Token-level comparison of two GPT-2-style models against the bare work it cannot avoid.

Two GPT-2 models with random weights (seeded) are compared over a padded token probe with the
``token`` view (every real token a sample), the selected layers of one against all of the
other's (Pearson, max matching; no depth penalty, so that the best |r| of each neuron can be
checked). The baseline is the bare minimum, streamed batch by batch like neurocorr: both models'
forward passes with hooks on the same modules, the real tokens gathered, one float32 cross GEMM
per batch accumulated in float64 (plus the sums and sums of squares), then r and each neuron's
best |r|. Each run is a fresh process, so its peak memory (ru_maxrss) is its own; running two
token counts shows whether that peak grows with the tokens. Prints the times side by side, their
ratio (wall and CPU time), the peaks, and the largest difference between the two runs' best |r| per neuron::

    python benchmarks/transformer_tokens.py                                   # 12 x 768, 4,000 and 16,000 tokens
    python benchmarks/transformer_tokens.py --tokens 25000 100000 200000      # the issue's size (hours on 2 cores)
    python benchmarks/transformer_tokens.py --layers 4 --width 128 --tokens 8000 --select 'block*.mlp.act'

``--select`` defaults to ``block*.resid`` (each block's output, the residual stream: 12 x 768 =
9,216 neurons a side): its cross GEMM costs about as much as one model's forward pass per token.
``block*.mlp.act`` (12 x 3,072 = 36,864 a side) costs 16 times that, and its full similarity
(36,864^2 float64, about 11 GB per matrix) does not fit this machine's memory (docs/transformers.md).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

VOCAB = 1000


def build(seed: int, layers: int, width: int, positions: int) -> Any:
    import torch

    from neurocorr_transformers.provider import import_transformers

    t = import_transformers()
    torch.manual_seed(seed)
    config = t.GPT2Config(n_layer=layers, n_embd=width, n_head=max(1, width // 64), vocab_size=VOCAB,
                          n_positions=positions, bos_token_id=0, eos_token_id=0)
    return t.GPT2Model(config).eval()


def probe(tokens: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded token ids and mask: sequences of length/4..length real tokens, about ``tokens`` in all."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(max(1, length // 4), length + 1, tokens)
    count = int(np.searchsorted(np.cumsum(lengths), tokens)) + 1
    ids = rng.integers(1, VOCAB, (count, length))
    return ids, (np.arange(length)[None, :] < lengths[:count, None]).astype(np.int64)


def modules(model: Any, select: str) -> list[Any]:
    """The torch modules whose outputs the baseline hooks: the same ones the hf provider captures."""
    from neurocorr_transformers.layers import capture_points

    return [p for p in capture_points(model, "model") if fnmatch.fnmatchcase(p.name, select)]


def real_tokens(model: Any, ids: np.ndarray, mask: np.ndarray, batch: int, select: str) -> Iterator[np.ndarray]:
    """Batch by batch: the model's forward pass with hooks on the selected modules, then the real
    tokens' activations of those modules side by side (float32, tokens x neurons)."""
    import torch

    from neurocorr_transformers.layers import hook

    points = modules(model, select)
    for lo in range(0, len(ids), batch):
        keep = torch.from_numpy(mask[lo:lo + batch].astype(bool))
        got: dict[str, Any] = {}
        handles = [hook(p, got.__setitem__) for p in points]
        with torch.no_grad():
            model(input_ids=torch.from_numpy(ids[lo:lo + batch]),
                  attention_mask=torch.from_numpy(mask[lo:lo + batch]))
        for h in handles:
            h.remove()
        real = torch.cat([got[p.name][keep] for p in points], dim=1).numpy()
        del got  # the padded outputs: not held while the caller works or the next pass runs
        yield real


def bare(models: list[Any], ids: np.ndarray, mask: np.ndarray, batch: int, select: str) -> np.ndarray:
    """Streamed forward passes, real tokens gathered, one float32 cross GEMM per batch: A's best |r|."""
    cross = sums = squares = None
    rows = 0
    for sides in zip(*(real_tokens(m, ids, mask, batch, select) for m in models), strict=True):
        x, y = sides
        if cross is None:
            cross, sums, squares = np.zeros((x.shape[1], y.shape[1])), [np.zeros(s.shape[1]) for s in sides], \
                [np.zeros(s.shape[1]) for s in sides]
        assert sums is not None and squares is not None
        cross += x.T @ y  # the one GEMM every Pearson needs
        for i, s in enumerate(sides):
            sums[i] += s.sum(axis=0, dtype=np.float64)
            squares[i] += np.einsum("ij,ij->j", s, s, dtype=np.float64)
        rows += len(x)
    assert cross is not None and sums is not None and squares is not None
    mx, my = sums[0] / rows, sums[1] / rows
    cov = cross - rows * np.outer(mx, my)
    sx, sy = np.sqrt(squares[0] - rows * mx**2), np.sqrt(squares[1] - rows * my**2)
    return np.abs(cov / np.outer(sx, sy)).max(axis=1)


def neurocorr(models: list[Any], ids: np.ndarray, mask: np.ndarray, batch: int, select: str) -> tuple[np.ndarray, int]:
    from neurocorr_core import compare
    from neurocorr_transformers import HFModel, token_probe

    result = compare(HFModel(models[0]), HFModel(models[1]), token_probe(ids, mask), neurons="token",
                     layers_a=select, layers_b=select, batch_size=batch, depth_penalty="none")
    return np.asarray(result.value_a), result.samples


def child(args: argparse.Namespace) -> None:
    """One measured run in this fresh process: a JSON line with seconds, peak MB and the best |r| file."""
    ids, mask = probe(args.run_tokens, args.length)
    models = [build(seed, args.layers, args.width, args.length) for seed in (1, 2)]
    start, cpu = time.perf_counter(), _cpu()
    if args.run == "bare":
        best, samples = bare(models, ids, mask, args.batch, args.select), int(mask.sum())
    else:
        best, samples = neurocorr(models, ids, mask, args.batch, args.select)
    took, cpu = time.perf_counter() - start, _cpu() - cpu
    np.save(args.out, best)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"seconds": took, "cpu": cpu, "peak_mb": peak, "samples": samples, "sequences": len(ids)}))


def _cpu() -> float:
    """CPU seconds of this process, all threads: on a shared machine, the work done, not the wait."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def run(args: argparse.Namespace, method: str, tokens: int, out: Path, *, script: str = __file__,
        extra: Sequence[str] = ()) -> dict[str, Any]:
    """One measured run of ``script`` (this benchmark or a sibling) in a fresh process, ``extra``
    appended to its arguments: the JSON line its child printed."""
    command = [sys.executable, script, "--run", method, "--run-tokens", str(tokens), "--out", str(out),
               "--layers", str(args.layers), "--width", str(args.width), "--length", str(args.length),
               "--batch", str(args.batch), "--select", args.select, *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{method} run over {tokens} tokens failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--tokens", type=int, nargs="+", default=[4000, 16000],
                        help="real tokens in the probe (about); give two or more to see the peak memory per count")
    parser.add_argument("--select", default="block*.resid", help="the layers of each side (a glob of layer names)")
    parser.add_argument("--length", type=int, default=64, help="padded sequence length")
    parser.add_argument("--batch", type=int, default=64, help="sequences per batch")
    parser.add_argument("--only", choices=("neurocorr",),
                        help="run neurocorr alone (its time and peak memory at more tokens, without the baseline)")
    parser.add_argument("--run", choices=("bare", "neurocorr"), help=argparse.SUPPRESS)
    parser.add_argument("--run-tokens", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        child(args)
        return
    print(f"{args.layers} layers x {args.width} wide, layers {args.select!r}; sequences of <= {args.length} tokens, "
          f"{args.batch} a batch; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start", flush=True)
    print("wall and CPU seconds (CPU: all threads; steadier than wall on a shared machine), peak RSS", flush=True)
    print(f"{'tokens':>8} {'seqs':>5} {'bare s':>7} {'ours s':>7} {'ratio':>6} {'bare cpu':>9} {'ours cpu':>9} "
          f"{'ratio':>6} {'bare MB':>8} {'ours MB':>8} {'max|diff| r':>12}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for tokens in args.tokens:
            if args.only:
                n = run(args, "neurocorr", tokens, Path(tmp, "neurocorr.npy"))
                print(f"{n['samples']:>8} {n['sequences']:>5} {'':>7} {n['seconds']:>7.1f} {'':>6} {'':>9} "
                      f"{n['cpu']:>9.1f} {'':>6} {'':>8} {n['peak_mb']:>8.0f}", flush=True)
                continue
            got = {m: run(args, m, tokens, Path(tmp, f"{m}.npy")) for m in ("bare", "neurocorr")}
            b, n = got["bare"], got["neurocorr"]
            if n["samples"] != b["samples"]:
                raise SystemExit(f"neurocorr counted {n['samples']} samples, the bare run {b['samples']} real tokens")
            diff = np.abs(np.load(Path(tmp, "bare.npy")) - np.load(Path(tmp, "neurocorr.npy"))).max()
            print(f"{b['samples']:>8} {b['sequences']:>5} {b['seconds']:>7.1f} {n['seconds']:>7.1f} "
                  f"{n['seconds'] / b['seconds']:>5.2f}x {b['cpu']:>9.1f} {n['cpu']:>9.1f} "
                  f"{n['cpu'] / b['cpu']:>5.2f}x "
                  f"{b['peak_mb']:>8.0f} {n['peak_mb']:>8.0f} {diff:>12.1e}", flush=True)
    print(f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
