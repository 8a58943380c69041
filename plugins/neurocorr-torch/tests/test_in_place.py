"""A layer followed by an in-place op (nn.ReLU(inplace=True)) is captured as it was computed,
not as the in-place op left it: eager models (hooks) and TorchScript files (graph outputs)."""

import numpy as np
import pytest
import torch
from torch import nn

from neurocorr_torch import TorchProvider


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(27, 4),
                         nn.ReLU(inplace=True)).eval()


def reference(net: nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """Each layer applied by hand, out of place."""
    with torch.no_grad():
        conv = net[0](torch.from_numpy(x))
        dense = net[3](torch.relu(conv).flatten(1))
    return {"0": conv.numpy(), "1": torch.relu(conv).numpy(), "3": dense.numpy(), "4": torch.relu(dense).numpy()}


@pytest.mark.parametrize("form", ["eager", "torchscript"])
def test_outputs_overwritten_in_place_are_captured_before(form, tmp_path):
    net = model()
    if form == "torchscript":
        torch.jit.save(torch.jit.script(net), tmp_path / "net.pt")
        prov = TorchProvider(tmp_path / "net.pt")
    else:
        prov = TorchProvider(net)
    batches = [np.random.default_rng(s).normal(size=(4, 1, 5, 5)).astype(np.float32) for s in range(3)]
    for x, out in zip(batches, prov.activations(batches, ["0", "1", "3", "4"]), strict=True):
        want = reference(net, x)
        assert (want["0"] < 0).any() and (want["3"] < 0).any()  # the in-place ReLUs would change them
        for name in want:
            np.testing.assert_allclose(out[name], want[name], rtol=1e-6, atol=1e-6, err_msg=name)


def test_channel_means_need_no_copy():
    net = model()
    x = np.random.default_rng(5).normal(size=(4, 1, 5, 5)).astype(np.float32)
    out = next(TorchProvider(net).activations([x], ["0"], channel_means=True))["0"]
    np.testing.assert_allclose(out, reference(net, x)["0"].mean(axis=(2, 3)), rtol=1e-6, atol=1e-6)
