"""Extraction overhead of the JAX provider over a bare jitted forward pass.

On the seed paper's CNN (conv 32 -> maxpool -> ReLU -> conv 64 -> maxpool -> ReLU -> dense 100
-> dense 10) at 28x28, built as a Flax nnx module, a Flax linen module or a plain JAX function,
the same probe batches go through

- bare:      the model's forward pass under ``jax.jit`` with the weights as arguments, on NHWC
             batches, output fetched to numpy (the fastest way to run the model in JAX), and
- neurocorr: ``JaxProvider.activations`` on the NCHW batches, capturing the chosen layers
             (NCHW -> NHWC in, channels-first float32 numpy arrays out),

interleaved, repeated, and reported as medians and their ratio (target: overhead <= 15%), in
wall-clock and in process CPU time (steadier on a shared machine).

Where the overhead comes from: XLA's CPU backend (YNNPACK) compiles the bare forward pass into
one fused kernel that never writes the intermediate feature maps to memory; a capture must
write them out, so XLA splits the kernel per layer. The neurocorr side adds no measurable
Python cost over its own compiled capture. The cost is relatively largest for thin layers
(the paper's CNN); ``--width 2`` doubles the conv channels.

    python benchmarks/extraction_jax.py [--kind nnx|linen|fn] [--samples 4096] [--batch 256] [--width 1]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen, nnx

from neurocorr_core.selection import select_layers
from neurocorr_jax import JaxProvider

_pool = functools.partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2))


def _flatten(x: jax.Array) -> jax.Array:
    return x.reshape(x.shape[0], -1)


def nnx_cnn(width: int = 1) -> nnx.Sequential:
    rngs = nnx.Rngs(0)
    c1, c2 = 32 * width, 64 * width
    return nnx.Sequential(
        nnx.Conv(1, c1, (3, 3), padding="VALID", rngs=rngs), _pool, nnx.relu,
        nnx.Conv(c1, c2, (3, 3), padding="VALID", rngs=rngs), _pool, nnx.relu, _flatten,
        nnx.Linear(c2 * 5 * 5, 100, rngs=rngs), nnx.relu, nnx.Linear(100, 10, rngs=rngs))


def linen_cnn(width: int = 1) -> tuple[linen.Module, Any]:
    module = linen.Sequential([
        linen.Conv(32 * width, (3, 3), padding="VALID"), _pool, linen.relu,
        linen.Conv(64 * width, (3, 3), padding="VALID"), _pool, linen.relu, _flatten,
        linen.Dense(100), linen.relu, linen.Dense(10)])
    return module, module.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))


def fn_cnn(width: int = 1) -> tuple[Callable[..., Any], Callable[[jax.Array], Any]]:
    """(bare forward, protocol function) over the same weights, NHWC."""
    _, variables = linen_cnn(width)
    p = variables["params"]

    def conv(x: jax.Array, layer: dict[str, jax.Array]) -> jax.Array:
        return jax.lax.conv_general_dilated(x, layer["kernel"], (1, 1), "VALID",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")) + layer["bias"]

    def forward(params: Any, x: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        relu1 = jax.nn.relu(_pool(conv(x, params["layers_0"])))
        relu2 = jax.nn.relu(_pool(conv(relu1, params["layers_3"])))
        relu3 = jax.nn.relu(_flatten(relu2) @ params["layers_7"]["kernel"] + params["layers_7"]["bias"])
        out = relu3 @ params["layers_9"]["kernel"] + params["layers_9"]["bias"]
        return out, {"relu1": relu1, "relu2": relu2, "relu3": relu3}

    return (lambda x: forward(p, x)[0]), functools.partial(forward, p)


def bare_forward(kind: str, width: int = 1) -> tuple[Callable[[np.ndarray], Any], object]:
    """A jitted forward of the model (weights as jit arguments where the model has them)
    and the object neurocorr is given."""
    if kind == "nnx":
        model = nnx_cnn(width)
        graphdef, state = nnx.split(model)
        run = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
        return (lambda x: run(state, x)), model
    if kind == "linen":
        module, variables = linen_cnn(width)
        run = jax.jit(module.apply)
        return (lambda x: run(variables, x)), (module, variables)
    forward, protocol = fn_cnn(width)
    jitted = jax.jit(forward)
    return jitted, protocol


def timed(step: Callable[[np.ndarray], None], batches: list[np.ndarray]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds (all threads) to run ``step`` over ``batches``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        step(batch)
    return time.perf_counter() - wall, time.process_time() - cpu


def _each(stat: Callable[[list[float]], float], runs: list[tuple[float, float]]) -> tuple[float, float]:
    """``stat`` of the wall-clock and of the CPU times."""
    return stat([r[0] for r in runs]), stat([r[1] for r in runs])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kind", choices=["nnx", "linen", "fn"], default="nnx")
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--layers", default="kind:activation", help="layers neurocorr captures")
    parser.add_argument("--width", type=int, default=1, help="multiplies the conv channels (32, 64)")
    args = parser.parse_args()

    bare_run, model = bare_forward(args.kind, args.width)
    probe = np.random.default_rng(0).random((args.samples, 1, 28, 28), dtype=np.float32)
    nchw = [probe[i:i + args.batch] for i in range(0, len(probe), args.batch)]
    nhwc = [np.ascontiguousarray(b.transpose(0, 2, 3, 1)) for b in nchw]
    provider = JaxProvider(model, layout="nhwc")
    names = [la.name for la in select_layers(provider.layers(nchw[0][:2]), args.layers, "cnn")]

    def bare(batch: np.ndarray) -> None:
        np.asarray(bare_run(batch))  # fetched to the host, as neurocorr's arrays are

    def extract(batch: np.ndarray) -> None:
        for _ in provider.activations([batch], names):
            pass

    for step, batches in ((bare, nhwc), (extract, nchw)):  # compile (and the last-batch shape) first
        timed(step, batches[:1] + batches[-1:])
    bare_s, ours_s = [], []
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
        bare_s.append(timed(bare, nhwc))
        ours_s.append(timed(extract, nchw))
    print(f"jax {jax.__version__} ({jax.default_backend()}), {args.kind} model, width {args.width}; "
          f"{args.samples} samples, batch {args.batch}, {args.repeats} repeats; "
          f"neurocorr captures {len(names)} layers: {', '.join(names)}")
    print(f"{'repeat':>6} {'bare wall s':>12} {'neurocorr s':>12} {'ratio':>6}   "
          f"{'bare cpu s':>11} {'neurocorr':>10} {'ratio':>6}")
    rows = [(str(i), b, o) for i, (b, o) in enumerate(zip(bare_s, ours_s, strict=True))]
    rows.append(("median", _each(statistics.median, bare_s), _each(statistics.median, ours_s)))
    # On a shared machine the minimum is the least disturbed run of each.
    rows.append(("min", _each(min, bare_s), _each(min, ours_s)))
    for label, (bw, bc), (ow, oc) in rows:
        print(f"{label:>6} {bw:>12.4f} {ow:>12.4f} {ow / bw:>6.3f}   {bc:>11.4f} {oc:>10.4f} {oc / bc:>6.3f}")
    (bw, _), (ow, _) = rows[-2][1], rows[-2][2]
    print(f"median wall-clock overhead {100 * (ow / bw - 1):+.1f}% (target <= +15%)")

if __name__ == "__main__":
    main()
