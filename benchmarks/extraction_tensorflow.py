"""Extraction overhead of the tensorflow provider over Keras' own forward pass.

On the seed paper's CNN (conv 32 -> maxpool -> ReLU -> conv 64 -> maxpool -> ReLU -> dense 100
-> dense 10) at 28x28, the same probe batches go through

- bare:      ``model.predict_on_batch(x)`` and a ``tf.function`` call of the model, on NHWC
             batches (the model's own layout, made ahead of time), and
- neurocorr: ``TensorFlowProvider.activations`` on the NCHW batches, capturing the chosen layers
             (NCHW -> NHWC in, channels-first float32 arrays out): what the position view
             extracts, and
- neurocorr channel: the same with ``channel_means=True`` (the channel view's pushdown: the
             sub-model averages the maps over H and W, only (batch, C) arrays leave it),

interleaved batch by batch, repeated, and reported as medians and ratios (target: overhead
<= 15%).

    python benchmarks/extraction_tensorflow.py [--samples 4096] [--batch 256] [--repeats 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
from harness import by_batch
from keras import layers

from neurocorr_core.selection import select_layers
from neurocorr_tensorflow import TensorFlowProvider


def paper_cnn() -> keras.Model:
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((28, 28, 1))
    x = layers.ReLU(name="relu1")(layers.MaxPooling2D(2)(layers.Conv2D(32, 3)(x)))
    x = layers.ReLU(name="relu2")(layers.MaxPooling2D(2)(layers.Conv2D(64, 3)(x)))
    x = layers.ReLU(name="relu3")(layers.Dense(100)(layers.Flatten()(x)))
    return keras.Model(inputs, layers.Dense(10)(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--layers", default="kind:activation", help="layers neurocorr captures")
    args = parser.parse_args()

    import tensorflow as tf

    model = paper_cnn()
    probe = np.random.default_rng(0).random((args.samples, 1, 28, 28), dtype=np.float32)
    nchw = [probe[i:i + args.batch] for i in range(0, len(probe), args.batch)]
    nhwc = [np.ascontiguousarray(b.transpose(0, 2, 3, 1)) for b in nchw]
    provider = TensorFlowProvider(model)
    names = [la.name for la in select_layers(provider.layers(nchw[0][:2]), args.layers, "cnn")]
    jitted = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def extract(means: bool) -> Callable[[np.ndarray], None]:
        def step(batch: np.ndarray) -> None:
            for _ in provider.activations([batch], names, channel_means=means):
                pass
        return step

    steps: dict[str, Callable[[np.ndarray], object]] = {
        "predict_on_batch": model.predict_on_batch,
        "tf.function": lambda b: jitted(b).numpy(),
        "neurocorr": extract(False),
        "neurocorr channel": extract(True),
    }
    inputs = [nhwc, nhwc, nchw, nchw]
    for name, batches in zip(steps, inputs, strict=True):  # compile, also for the last batch's shape
        for batch in (batches[0], batches[-1]):
            steps[name](batch)
    paired = {name: (steps[name], batches) for name, batches in zip(steps, inputs, strict=True)}
    runs = [{name: wall for name, (wall, _) in by_batch(paired, turn=r).items()} for r in range(args.repeats)]
    med = {name: statistics.median(run[name] for run in runs) for name in steps}

    print(f"tensorflow {tf.__version__}, keras {keras.__version__}, {os.cpu_count()} CPUs; "
          f"{args.samples} samples, batch {args.batch}, {args.repeats} repeats; neurocorr captures "
          f"{len(names)} layers ({', '.join(names)}) as channels-first float32 arrays")
    print(f"{'repeat':>6} " + " ".join(f"{name + ' (s)':>22}" for name in steps))
    for i, run in enumerate(runs):
        print(f"{i:>6} " + " ".join(f"{run[name]:>22.4f}" for name in steps))
    print(f"{'median':>6} " + " ".join(f"{med[name]:>22.4f}" for name in steps))
    for ours in ("neurocorr", "neurocorr channel"):
        for base in ("predict_on_batch", "tf.function"):
            ratio = med[ours] / med[base]
            print(f"{ours} / bare {base}: ratio {ratio:.3f} (overhead {100 * (ratio - 1):+.1f}%, "
                  "target <= +15%)")


if __name__ == "__main__":
    main()
