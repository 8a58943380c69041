"""Channel means taken inside the forward hook, against plain hooks and a float64 numpy mean."""

import weakref

import numpy as np
import pytest
import torch
from torch import nn

from neurocorr_core import compare
from neurocorr_torch import TorchProvider


class Shared(nn.Module):
    """Conv2d, Conv1d and Linear outputs, and one ReLU called three times (like EfficientNet's)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.seq = nn.Conv1d(5, 4, 3)
        self.fc = nn.Linear(4, 6)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv(x))  # (N, 5, 40, 40)
        x = self.act(self.seq(x.flatten(2)))  # (N, 4, 1598)
        return self.act(self.fc(x.mean(dim=2)))  # (N, 6)


def plain_hooks(model: nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every call's output, recorded by hand with torch's own hooks: no neurocorr code."""
    seen: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}

    def hook(name):
        def record(mod, args, out):
            calls = counts.get(name, 0)
            counts[name] = calls + 1
            seen[name if calls == 0 else f"{name}#{calls}"] = out.detach().numpy().copy()
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]
    with torch.no_grad():
        model(torch.from_numpy(x))
    for handle in handles:
        handle.remove()
    return seen


def probe(n=7):
    return (np.random.default_rng(0).normal(size=(n, 3, 40, 40)) + 2).astype(np.float32)


@pytest.mark.parametrize("script", [False, True], ids=["eager", "torchscript"])
def test_means_equal_numpy_means_of_the_full_outputs(script, tmp_path):
    model = Shared().eval()
    source = model
    if script:
        source = tmp_path / "shared.pt"
        torch.jit.script(model).save(source)
    x = probe()
    full = plain_hooks(model, x)
    names = ["conv", "act", "seq", "act#1", "fc", "act#2"]
    got = next(TorchProvider(source).activations([x], names, channel_means=True))
    for name in names:
        out = full[name].astype(np.float64)
        want = out.reshape(len(x), out.shape[1], -1).mean(axis=2) if out.ndim > 2 else out
        assert got[name].dtype == np.float32
        assert got[name].shape == want.shape, name
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6, err_msg=name)


def test_without_the_flag_outputs_stay_whole():
    got = next(TorchProvider(Shared()).activations([probe(2)], ["act", "act#1"]))
    assert got["act"].shape == (2, 5, 40, 40) and got["act#1"].shape == (2, 4, 1598)


def test_compare_in_channel_view_scores_as_a_numpy_reference():
    """compare(neurons='channel') with the pushdown gives the scores of the numpy channel view:
    a model against itself with a perturbed copy, scored from plain-hook outputs by hand."""
    a, b = Shared().eval(), Shared().eval()
    with torch.no_grad():
        b.conv.weight.add_(0.1 * torch.randn_like(b.conv.weight))
    x = probe(40)
    result = compare(a, b, x, layers_a=["act"], layers_b=["act"], neurons="channel")
    ha, hb = plain_hooks(a, x)["act"], plain_hooks(b, x)["act"]
    ma, mb = ha.mean(axis=(2, 3), dtype=np.float64), hb.mean(axis=(2, 3), dtype=np.float64)
    corr = np.corrcoef(ma.T, mb.T)[:5, 5:]
    np.testing.assert_allclose(result.score.a_to_b, np.abs(corr).max(axis=1).mean(), rtol=1e-5)


class Watched(nn.Module):
    """Two conv layers; the second notes whether the first's whole output is still alive once
    the ReLU between them has consumed it (nothing in the model itself holds it)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.first = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.second = nn.Conv2d(8, 4, 3, padding=1)
        self.alive: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.first(x)
        seen = weakref.ref(out)
        x = self.act(out)
        del out
        self.alive.append(seen() is not None)
        return self.second(x)


@pytest.mark.parametrize("means", [True, False], ids=["channel-means", "whole-outputs"])
def test_a_reduced_output_is_not_held_through_the_forward(means):
    """With channel means the hook keeps (batch, C), so the layer's whole map is freed as in a
    bare forward (an EfficientNet batch held 0.6 GB more when it was not); whole outputs are
    returned as views, so they must stay alive."""
    model = Watched().eval()
    bare = model(torch.zeros(2, 3, 16, 16))
    assert bare.shape == (2, 4, 16, 16) and model.alive == [False]
    model.alive.clear()
    (out,) = TorchProvider(model).activations([np.ones((2, 3, 16, 16), np.float32)], ["first", "act"],
                                              channel_means=means)
    assert out["first"].shape == ((2, 8) if means else (2, 8, 16, 16))
    assert model.alive == [not means]
