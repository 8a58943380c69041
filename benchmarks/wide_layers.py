"""Very wide layers: a 100,000 x 100,000 neuron comparison in bounded memory.

Two random one-layer networks (ReLU of a random projection of the same 32-feature input)
with ``--width`` neurons each are compared with Pearson + ``max`` (or ``--matching``) under
``--budget``; the similarity is computed in tiles and only each neuron's best partner is
kept. Prints the wall time, the tile plan, the peak memory traced by Python (numpy arrays
included) and the process's peak resident memory. ``--check N`` first compares the tiled
and untiled computations on N x N neurons and stops if any best match differs.

    python benchmarks/wide_layers.py                      # 100k x 100k, 64 samples, 1 GB budget
    python benchmarks/wide_layers.py --width 20000 --check 3000
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from collections.abc import Iterable, Iterator, Sequence
from types import SimpleNamespace

import numpy as np

from neurocorr_core import ActivationProvider, LayerInfo, PluginManager, compare, hookimpl
from neurocorr_core.tiles import human


class WideNet:
    """relu(x @ w + b): one dense layer of ``width`` neurons, float32, seeded."""

    def __init__(self, seed: int, width: int, n_in: int = 32) -> None:
        rng = np.random.default_rng(seed)
        self.w = rng.normal(0, 1 / np.sqrt(n_in), (n_in, width)).astype(np.float32)
        self.b = rng.normal(0, 0.1, width).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ self.w + self.b, 0)


class WideProvider(ActivationProvider):
    name = "wide-bench"
    handles = "benchmarks.wide_layers.WideNet objects"

    @classmethod
    def accepts(cls, model: object) -> bool:
        return isinstance(model, WideNet)

    def layers(self, sample: np.ndarray) -> list[LayerInfo]:
        assert isinstance(self.model, WideNet)
        return [LayerInfo("wide", (self.model.w.shape[1],), 0, "activation", "ReLU")]

    def activations(self, batches: Iterable[np.ndarray], layers: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
        assert isinstance(self.model, WideNet)
        for batch in batches:
            yield {"wide": self.model(batch)}


@hookimpl
def neurocorr_activation_providers() -> list[type[ActivationProvider]]:
    return [WideProvider]


def plugin_manager() -> PluginManager:
    pm = PluginManager()
    pm.register(SimpleNamespace(neurocorr_activation_providers=neurocorr_activation_providers), "wide-bench")
    return pm


def check(width: int, samples: int, matching: str) -> None:
    """Tiled (tiny budget) and untiled give the same best matches on a size that fits."""
    pm, probe = plugin_manager(), _probe(samples)
    a, b = WideNet(1, width), WideNet(2, width)
    full = compare(a, b, probe, matching=matching, plugin_manager=pm)
    tiled = compare(a, b, probe, matching=matching, plugin_manager=pm, memory_budget=_small_budget(width, samples))
    same_a = float(np.mean(full.partner_a == tiled.partner_a))
    same_b = float(np.mean(full.partner_b == tiled.partner_b))
    print(f"check {width} x {width}: {tiled.config['tiles']['a']['count']} tiles; same best match for "
          f"{same_a:.2%} of A and {same_b:.2%} of B; score {full.score.symmetric:.6f} untiled, "
          f"{tiled.score.symmetric:.6f} tiled")
    if same_a < 1 or same_b < 1:
        sys.exit("tiled and untiled best matches differ")


def _small_budget(width: int, samples: int) -> int:
    """A budget that holds the per-neuron state but only a few tiles' worth of scores."""
    return 4 * samples * 2 * width + 16 * samples * 2 * width + 2 * 48 * width + 12 * (width // 3) ** 2


def _probe(samples: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(samples, 32)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=100_000, help="neurons per model (default 100000)")
    parser.add_argument("--samples", type=int, default=64, help="probe samples (default 64)")
    parser.add_argument("--budget", default="1GB", help="memory budget (default 1GB)")
    parser.add_argument("--matching", default="max", help="max, mutual or hungarian (default max)")
    parser.add_argument("--check", type=int, default=2000, metavar="N",
                        help="first compare tiled and untiled best matches on N x N neurons (0: skip)")
    args = parser.parse_args()
    if args.check:
        check(args.check, args.samples, args.matching)
    pm, probe = plugin_manager(), _probe(args.samples)
    a, b = WideNet(1, args.width), WideNet(2, args.width)
    tracemalloc.start()
    start = time.perf_counter()
    result = compare(a, b, probe, matching=args.matching, memory_budget=args.budget, plugin_manager=pm)
    elapsed = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    tiles = result.config["tiles"]["a"]
    print(f"{args.width} x {args.width} neurons, {args.samples} samples, {args.matching}, budget {args.budget}")
    print(f"  tiles: {tiles['count']} of {tiles['rows']} x {tiles['cols']}")
    print(f"  score A->B {result.score.a_to_b:.4f}  B->A {result.score.b_to_a:.4f}  "
          f"matched {result.matched_fraction}")
    print(f"  time {elapsed:.1f} s; peak traced memory {human(traced)}; peak resident memory {human(rss)}")


if __name__ == "__main__":
    main()
