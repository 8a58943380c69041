"""Extraction overhead of the JAX provider over a bare jitted forward pass.

On the seed paper's CNN (conv 32 -> maxpool -> ReLU -> conv 64 -> maxpool -> ReLU -> dense 100
-> dense 10) at 28x28, built as a Flax nnx module, a Flax linen module or a plain JAX function,
the same probe batches go, batch by batch and interleaved (harness.by_batch: the order rotated every pass),
through

- bare:               the model's forward pass under ``jax.jit`` on NHWC batches, output fetched
                      to numpy (the fastest way to run the model in JAX),
- xla maps:           no neurocorr at all: the same model under ``jax.jit``, layer by layer, also
                      returning the three ReLU outputs (what ``kind:activation`` selects), fetched
                      with one ``jax.device_get``; this isolates what capturing costs inside XLA,
- xla means:          the same, with the feature maps averaged over H and W inside the jit,
- neurocorr position: ``JaxProvider.activations`` on the NCHW batches (NCHW -> NHWC in,
                      channels-first float32 maps out): what the position view extracts,
- neurocorr channel:  the same with ``channel_means=True`` (the channel view's pushdown: the
                      means are taken inside the jitted capture, (batch, C) leaves it),

and the medians over the repeats are printed with their ratios over bare, in wall-clock and in
process CPU time (the steadier one on a shared machine). Target: overhead <= 15%.

Where the overhead comes from (jax 0.10.2, CPU, the seed paper's CNN, batch 256; process-CPU
ratios over bare on a shared, heavily loaded 2-core machine):

- It is XLA's. ``xla maps`` alone costs 1.24-1.33x bare, and the provider is within a few
  percent of it (position 1.24-1.29x). The compiled HLO shows why: the bare pass is one
  YNNPACK fusion for the whole network (conv, pool, ReLU, conv, pool, ReLU, dense), which
  never writes a feature map to memory; a captured value has a second consumer (the program's
  output), which ends a YNNPACK fusion, so returning three ReLUs splits the program into three
  YNNPACK fusions and a loop fusion. With YNNPACK fusion switched off for comparison
  (``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=``, an experimental flag that neurocorr
  does not set) the bare pass becomes 2.4x slower and the capture costs only +2% over it.
- What does not help: smaller batches (32, 64) or the batch split into chunks of 16-64 inside
  the jit (``lax.map``): 1.25-1.37x, so it is not cache pressure; packing every output into one
  buffer (a concatenate, 1.64x: the concatenate is one more copy); also returning the final
  output (1.23x, unchanged); taking channel means inside the jit (``xla means`` 1.22-1.33x: the
  split stays and the means add reduce fusions); one ``jax.device_get`` for all outputs versus
  ``np.asarray`` per output (noise: on the CPU backend both are zero-copy).
- What the provider already does right: one jit per (layers, mode), traced once; the weights
  are jit arguments; one ``device_get`` per batch; the NCHW -> NHWC input transpose is inside
  the jit (a bitcast for one channel); the NHWC -> NCHW output transpose is a strided numpy view,
  free here: doing it inside the jit costs 1.64x bare instead of 1.33x, and a numpy copy after
  the fetch 1.42x (the core's position view copies the view once when it flattens it).
- The channel view does not beat the position view on the CPU backend (the maps never cross a
  device boundary there); on an accelerator it saves the copy of the maps to the host.
- Also no help: the weights as compile-time constants (bare and capture both ~7% faster);
  per-compilation XLA options for the capture alone (``compile(compiler_options=...)``: other
  ``xla_cpu_experimental_ynn_fusion_type`` sets, XNNPACK graph fusion modes: 1.29-6.3x).
- Dense layers lose no cross-layer fusion: ``--mlp 100`` and ``--mlp 1024,1024,1024`` cost
  1.00-1.03x in both views (``--mlp 20,20,20,20,20``, 0.4 ms a batch, ~1.15x: per-call cost).
- The cost is relatively largest for thin layers (little arithmetic per value written):
  ``--width 2`` (64 and 128 conv channels) gives about 1.16x.

So position-view extraction stays above the 15% target on this CNN on the CPU, by XLA's cost
of returning intermediates at all, which no provider can avoid without giving up YNNPACK's
whole-network fusion (which is what makes the bare pass fast).

    python benchmarks/extraction_jax.py [--kind nnx|linen|fn] [--samples 4096] [--batch 256] [--width 1]
                                        [--mlp 100 | --mlp 20,20,20,20,20 | --mlp 1024,1024,1024]
"""

from __future__ import annotations

import argparse
import functools
import statistics
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen, nnx
from harness import by_batch

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


def nnx_mlp(hidden: list[int]) -> nnx.Sequential:
    """flatten, (Linear + ReLU) per hidden width, Linear 10: the seed paper's MLPs (net1 = [100],
    net5 = [20] * 5), or wider ones."""
    rngs, sizes, layers = nnx.Rngs(0), [28 * 28, *hidden], [_flatten]
    for n_in, n_out in zip(sizes, hidden, strict=False):
        layers += [nnx.Linear(n_in, n_out, rngs=rngs), nnx.relu]
    return nnx.Sequential(*layers, nnx.Linear(sizes[-1], 10, rngs=rngs))


def nnx_model(width: int, mlp: list[int] | None) -> nnx.Sequential:
    return nnx_mlp(mlp) if mlp else nnx_cnn(width)


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


def bare_forward(kind: str, width: int = 1, mlp: list[int] | None = None) -> tuple[Callable[[np.ndarray], Any], object]:
    """A jitted forward of the model (weights as jit arguments where the model has them)
    and the object neurocorr is given."""
    if kind == "nnx":
        model = nnx_model(width, mlp)
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


def layerwise(kind: str, width: int = 1, means: bool = False,
              mlp: list[int] | None = None) -> Callable[[np.ndarray], Any]:
    """XLA alone, no neurocorr: the bare model under ``jax.jit``, layer by layer, also returning
    the ReLU outputs (NHWC; with ``means`` averaged over H and W inside the jit), the
    weights passed as bare and the provider pass them (jit arguments of a Flax module; constants
    of a plain function). Isolates what capturing costs inside XLA from what neurocorr adds."""
    def through(layers: Any, x: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
        captured = []
        for layer in layers:
            x = layer(x)
            if layer is nnx.relu:  # the ReLUs of the Sequential: what kind:activation selects
                captured.append(x.mean(axis=(1, 2)) if means and x.ndim == 4 else x)
        return x, captured

    if kind == "nnx":
        graphdef, state = nnx.split(nnx_model(width, mlp))
        run = jax.jit(lambda s, x: through(nnx.merge(graphdef, s).layers, x))
        return lambda x: run(state, x)
    if kind == "linen":
        module, variables = linen_cnn(width)
        bound = jax.jit(lambda v, x: through(module.bind(v).layers, x))
        return lambda x: bound(variables, x)
    _, protocol = fn_cnn(width)  # a plain function closes over its weights: constants, as in bare

    def captures(x: jax.Array) -> Any:
        out, captured = protocol(x)
        return out, {k: v.mean(axis=(1, 2)) if means and v.ndim == 4 else v for k, v in captured.items()}
    return jax.jit(captures)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kind", choices=["nnx", "linen", "fn"], default="nnx")
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--layers", default="kind:activation", help="layers neurocorr captures")
    parser.add_argument("--width", type=int, default=1, help="multiplies the conv channels (32, 64)")
    parser.add_argument("--mlp", type=lambda v: [int(w) for w in v.split(",")], metavar="WIDTHS",
                        help="an nnx MLP with these hidden widths (e.g. 100, or 20,20,20,20,20) instead of the CNN")
    args = parser.parse_args()
    if args.mlp and args.kind != "nnx":
        parser.error("--mlp builds an nnx model: use it with --kind nnx")

    bare_run, model = bare_forward(args.kind, args.width, args.mlp)
    probe = np.random.default_rng(0).random((args.samples, 1, 28, 28), dtype=np.float32)
    nchw = [probe[i:i + args.batch] for i in range(0, len(probe), args.batch)]
    nhwc = [np.ascontiguousarray(b.transpose(0, 2, 3, 1)) for b in nchw]
    provider = JaxProvider(model, layout="nhwc")
    names = [la.name for la in select_layers(provider.layers(nchw[0][:2]), args.layers, "cnn")]
    xla = layerwise(args.kind, args.width, mlp=args.mlp)
    xla_means = layerwise(args.kind, args.width, means=True, mlp=args.mlp)

    def extract(means: bool) -> Callable[[np.ndarray], None]:
        def step(batch: np.ndarray) -> None:
            for _ in provider.activations([batch], names, channel_means=means):
                pass
        return step

    steps: dict[str, tuple[Callable[[np.ndarray], object], list[np.ndarray]]] = {
        # fetched to the host, as neurocorr's arrays are
        "bare": (lambda b: np.asarray(bare_run(b)), nhwc),
        "xla maps": (lambda b: jax.device_get(xla(b)), nhwc),
        "xla means": (lambda b: jax.device_get(xla_means(b)), nhwc),
        "neurocorr position": (extract(False), nchw),
        "neurocorr channel": (extract(True), nchw),
    }
    for step, batches in steps.values():  # compile, also for the last batch's shape
        step(batches[0])
        step(batches[-1])
    runs = [by_batch(steps, turn=r) for r in range(args.repeats)]
    wall = {name: statistics.median(run[name][0] for run in runs) for name in steps}
    cpu = {name: statistics.median(run[name][1] for run in runs) for name in steps}

    shape = f"MLP {args.mlp}" if args.mlp else f"CNN, width {args.width}"
    print(f"jax {jax.__version__} ({jax.default_backend()}), {args.kind} {shape}; "
          f"{args.samples} samples, batch {args.batch}, {args.repeats} repeats; "
          f"neurocorr captures {len(names)} layers: {', '.join(names)}")
    print(f"{'step':>20} {'wall s':>8} {'ratio':>6} {'cpu s':>8} {'ratio':>6}   (medians; ratio: over bare)")
    for name in steps:
        print(f"{name:>20} {wall[name]:>8.4f} {wall[name] / wall['bare']:>6.3f} "
              f"{cpu[name]:>8.4f} {cpu[name] / cpu['bare']:>6.3f}")
    for name, xla_alone in (("neurocorr position", "xla maps"), ("neurocorr channel", "xla means")):
        print(f"{name} view: wall-clock overhead {100 * (wall[name] / wall['bare'] - 1):+.1f}% over bare "
              f"(target <= +15%), {100 * (wall[name] / wall[xla_alone] - 1):+.1f}% over {xla_alone}; "
              f"CPU {100 * (cpu[name] / cpu['bare'] - 1):+.1f}% over bare")

if __name__ == "__main__":
    main()
