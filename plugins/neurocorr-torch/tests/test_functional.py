"""Activation functions called in forward (F.relu, x.relu(), F.gelu, torch.tanh) are layers.

For each model: the values captured equal a hand-written reference forward (or, for the library
models, plain torch hooks on the twin's activation modules), and the model scores 1.0 against its
twin that uses activation modules (pearson, every activation layer on both sides).
"""

from __future__ import annotations

import copy
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neurocorr_core import compare
from neurocorr_torch import TorchProvider
from neurocorr_torch.named import import_torchvision

RNG = np.random.default_rng(0)


def probe(n: int = 48, shape: tuple[int, ...] = (1, 12, 12)) -> np.ndarray:
    return RNG.normal(size=(n, *shape)).astype(np.float32)


def captured(model: nn.Module, x: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    """The activation layers' names and values, through the provider."""
    provider = TorchProvider(model)
    names = [layer.name for layer in provider.layers(x[:2]) if layer.kind == "activation"]
    values = next(provider.activations([x], names))
    return names, [values[n] for n in names]


def assert_twins(functional: nn.Module, modules: nn.Module, x: np.ndarray, reference: list[np.ndarray]) -> None:
    names, values = captured(functional, x)
    twin_names, twin_values = captured(modules, x)
    assert len(values) == len(reference) == len(twin_values), (names, twin_names)
    for name, got, want, twin in zip(names, values, reference, twin_values, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(twin, want, rtol=1e-5, atol=1e-6, err_msg=name)
    assert_scores_one(functional, modules, x)


def assert_scores_one(functional: nn.Module, modules: nn.Module, x: np.ndarray) -> None:
    """Every neuron of the activation layers scores 1.0 against its twin; only a constant (dead)
    neuron scores 0, as it does against itself, so the network score is the live share."""
    result = compare(functional, modules, x, metric="pearson")
    n, dead = result.value_a.size, sum(layer.dead for layer in result.layers_a)
    assert dead == sum(layer.dead for layer in result.layers_b)
    assert np.isclose(result.value_a, 1.0, atol=1e-6).sum() == n - dead
    assert result.score.symmetric == pytest.approx((n - dead) / n, abs=1e-6)
    itself = compare(modules, modules, x, metric="pearson")
    assert result.score.symmetric == pytest.approx(itself.score.symmetric, abs=1e-9)


# -- hand-written CNNs ---------------------------------------------------------------------------
class ReluCNN(nn.Module):
    """F.relu and torch.relu in forward, and a block whose forward calls F.relu twice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3)
        self.conv2 = nn.Conv2d(6, 8, 3)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return F.relu(self.fc(x.mean((2, 3))))


class ReluCNNModules(ReluCNN):
    def __init__(self) -> None:
        super().__init__()
        self.act1, self.act2, self.act3 = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.conv1(x))
        x = self.act2(self.conv2(x))
        return self.act3(self.fc(x.mean((2, 3))))


def relu_cnn_reference(m: ReluCNN, x: np.ndarray) -> list[np.ndarray]:
    """The same forward in numpy-visible steps: conv, then max(0, .), by torch's plain ops."""
    with torch.no_grad():
        t = torch.from_numpy(x)
        a1 = torch.clamp(m.conv1(t), min=0)
        a2 = torch.clamp(m.conv2(a1), min=0)
        a3 = torch.clamp(a2.mean((2, 3)) @ m.fc.weight.T + m.fc.bias, min=0)
    return [a.numpy() for a in (a1, a2, a3)]


class GeluCNN(nn.Module):
    """x.relu() and F.gelu inside a block's forward, the block called twice (``#1``)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = nn.Conv2d(4, 4, 3, padding=1)

    def run_block(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.block(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).relu()
        return self.run_block(self.run_block(x))


class GeluCNNModules(GeluCNN):
    def __init__(self) -> None:
        super().__init__()
        self.relu, self.gelu = nn.ReLU(), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.stem(x))
        return self.gelu(self.block(self.gelu(self.block(x))))


def gelu_cnn_reference(m: GeluCNN, x: np.ndarray) -> list[np.ndarray]:
    """GELU by its definition, x * Phi(x), with Phi from the error function."""
    def gelu(t: torch.Tensor) -> torch.Tensor:
        return t * 0.5 * (1.0 + torch.erf(t / np.sqrt(2.0)))

    with torch.no_grad():
        a1 = torch.clamp(m.stem(torch.from_numpy(x)), min=0)
        a2 = gelu(m.block(a1))
        a3 = gelu(m.block(a2))
    return [a.numpy() for a in (a1, a2, a3)]


def test_f_relu_cnn_names_values_and_twin():
    torch.manual_seed(0)
    model = ReluCNN()
    twin = ReluCNNModules()
    twin.load_state_dict(model.state_dict())
    x = probe()
    names, _ = captured(model, x)
    assert names == ["relu()", "relu()#1", "relu()#2"]
    assert_twins(model, twin, x, relu_cnn_reference(model, x))


def test_method_relu_and_gelu_cnn():
    torch.manual_seed(1)
    model = GeluCNN()
    twin = GeluCNNModules()
    twin.load_state_dict(model.state_dict(), strict=False)
    x = probe()
    assert compare(model, twin, x, metric="pearson").score.symmetric == pytest.approx(1.0, abs=1e-6)
    layers = TorchProvider(model).layers(x[:2])
    acts = [(layer.name, layer.op) for layer in layers if layer.kind == "activation"]
    assert acts == [("relu()", "relu"), ("gelu()", "gelu"), ("gelu()#1", "gelu")]
    assert_twins(model, twin, x, gelu_cnn_reference(model, x))


def test_torchscript_graph_shows_functional_activations():
    torch.manual_seed(2)
    model = ReluCNN()
    x = probe(8)
    eager = TorchProvider(model).layers(x[:2])
    scripted = TorchProvider(torch.jit.script(model))
    listed = [(layer.name, layer.kind) for layer in scripted.layers(x[:2])]
    assert listed == [(layer.name, layer.kind) for layer in eager]
    names = [layer.name for layer in eager if layer.kind == "activation"]
    got = next(scripted.activations([x], names))
    for name, want in zip(names, relu_cnn_reference(model, x), strict=True):
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6)


def test_activation_module_is_not_counted_twice():
    """nn.ReLU calls F.relu itself: one layer, the module's."""
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.GELU())
    layers = TorchProvider(model).layers(np.ones((2, 4), np.float32))
    assert [layer.name for layer in layers] == ["0", "1", "2"]


def test_in_place_functional_relu_keeps_the_conv_output():
    """F.relu(inplace=True) overwrites the conv output the provider captured first."""
    class InPlace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.relu(self.conv(x), inplace=True)

    torch.manual_seed(3)
    model = InPlace()
    x = probe(6)
    out = next(TorchProvider(model).activations([x], ["conv", "relu()"]))
    with torch.no_grad():
        conv = model.conv(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out["conv"], conv, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["relu()"], np.maximum(conv, 0), rtol=1e-6, atol=1e-6)
    assert (out["conv"] < 0).any()


# -- library models --------------------------------------------------------------------------------
class Apply(nn.Module):
    """Stands where an activation module stood, calling the function instead: forward is F.relu(x)."""

    def __init__(self, function: object) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)  # type: ignore[operator]


def functional_copy(model: nn.Module, kind: type[nn.Module], function: object) -> nn.Module:
    """A copy of ``model`` whose ``kind`` modules are replaced by calls of ``function`` in forward."""
    copied = copy.deepcopy(model)
    for name, sub in list(copied.named_modules()):
        if isinstance(sub, kind):
            parent, _, leaf = name.rpartition(".")
            setattr(copied.get_submodule(parent) if parent else copied, leaf, Apply(function))
    return copied


def hooked(model: nn.Module, kind: type[nn.Module], x: np.ndarray) -> list[np.ndarray]:
    """The outputs of every call of ``kind`` modules, by plain torch hooks (copied: some run in place)."""
    seen: list[np.ndarray] = []
    handles = [m.register_forward_hook(lambda _m, _a, out: seen.append(out.detach().clone().numpy()))
               for m in model.modules() if isinstance(m, kind)]
    with torch.no_grad():
        model.eval()(torch.from_numpy(x))
    for h in handles:
        h.remove()
    return seen


def resnet_functional(model: nn.Module) -> nn.Module:
    """torchvision's ResNet-18 with its forward written by hand, F.relu in place of its ReLU modules."""
    copied = copy.deepcopy(model)

    def block_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)

    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))

    copied.forward = types.MethodType(forward, copied)
    del copied.relu
    for layer in (copied.layer1, copied.layer2, copied.layer3, copied.layer4):
        for block in layer:
            block.forward = types.MethodType(block_forward, block)
            del block.relu
    return copied


def resnet_reference(m: nn.Module, x: np.ndarray) -> list[np.ndarray]:
    """ResNet-18's ReLU outputs in order, by a hand-written forward over its convs and norms."""
    acts: list[torch.Tensor] = []

    def relu(t: torch.Tensor) -> torch.Tensor:
        acts.append(torch.clamp(t, min=0))
        return acts[-1]

    with torch.no_grad():
        t = m.maxpool(relu(m.bn1(m.conv1(torch.from_numpy(x)))))
        for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
            for b in layer:
                out = b.bn2(b.conv2(relu(b.bn1(b.conv1(t)))))
                t = relu(out + (t if b.downsample is None else b.downsample(t)))
    return [a.numpy() for a in acts]


def test_torchvision_resnet18():
    tv = import_torchvision()
    torch.manual_seed(4)
    model = tv.models.resnet18().eval()
    x = probe(24, (3, 32, 32))
    functional = resnet_functional(model)
    names, _ = captured(functional, x)
    assert names[:3] == ["relu()", "layer1.0.relu()", "layer1.0.relu()#1"] and len(names) == 17
    assert_twins(functional, model, x, resnet_reference(model, x))


def test_torchvision_mobilenet_v3_mixes_modules_and_functions():
    tv = import_torchvision()
    torch.manual_seed(5)
    model = tv.models.mobilenet_v3_small().eval()
    x = probe(24, (3, 32, 32))
    functional = functional_copy(model, nn.ReLU, F.relu)  # Hardswish/Hardsigmoid stay modules
    names, _ = captured(functional, x)
    assert any(n.endswith(".relu()") for n in names) and any(layer.op == "Hardswish" for layer in
                                                              TorchProvider(functional).layers(x[:2]))
    reference = [*hooked(model, nn.ReLU, x)]
    got = dict(zip(names, captured(functional, x)[1], strict=True))
    relus = [got[n] for n in names if n.endswith(".relu()")]
    assert len(relus) == len(reference)
    for a, b in zip(relus, reference, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert_scores_one(functional, model, x)


def test_timm_vit_tiny_gelu():
    timm = pytest.importorskip("timm")
    torch.manual_seed(6)
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, pretrained=False).eval()
    x = probe(16, (3, 32, 32))
    functional = functional_copy(model, nn.GELU, F.gelu)
    names, _ = captured(functional, x)
    assert names[0] == "blocks.0.mlp.act.gelu()" and len(names) == 12
    assert_twins(functional, model, x, hooked(model, nn.GELU, x))
