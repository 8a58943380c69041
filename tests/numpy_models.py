"""Framework-free models for core tests: a sequential numpy network and its provider."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from neurocorr_core import ActivationProvider, LayerInfo, NeurocorrError, hookimpl
from neurocorr_core.interfaces import kind_of

Step = tuple[str, str, Callable[[np.ndarray], np.ndarray]]  # (name, op, function)


@dataclass
class NumpyNet:
    """Applies its steps in order; every step is a layer."""

    steps: list[Step]
    input_shape: tuple[int, ...]
    calls: list[int] = field(default_factory=list)

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if int(np.prod(x.shape[1:])) != int(np.prod(self.input_shape)):
            raise NeurocorrError(f"NumpyNet expects (N, *{self.input_shape}), got {x.shape}")
        x = x.reshape(len(x), *self.input_shape)
        self.calls.append(len(x))
        out = {}
        for name, _, fn in self.steps:
            x = fn(x)
            out[name] = x.astype(np.float32)
        return out


class NumpyProvider(ActivationProvider):
    name = "numpy-test"
    handles = "tests.numpy_models.NumpyNet objects"

    @classmethod
    def accepts(cls, model: object) -> bool:
        return isinstance(model, NumpyNet)

    def layers(self, sample: np.ndarray) -> list[LayerInfo]:
        assert isinstance(self.model, NumpyNet)
        out = self.model.run(sample)
        return [LayerInfo(name, out[name].shape[1:], i, kind_of(op), op)
                for i, (name, op, _) in enumerate(self.model.steps)]

    def activations(self, batches: Iterable[np.ndarray], layers: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
        assert isinstance(self.model, NumpyNet)
        for batch in batches:
            out = self.model.run(batch)
            yield {name: out[name] for name in layers}


@hookimpl
def neurocorr_activation_providers() -> list[type[ActivationProvider]]:
    return [NumpyProvider]


plugin = SimpleNamespace(neurocorr_activation_providers=neurocorr_activation_providers)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def dense(rng: np.random.Generator, n_in: int, n_out: int, dead: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A dense layer; its last ``dead`` units get a bias so negative that ReLU kills them."""
    w = rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out))
    b = rng.normal(0, 0.1, n_out)
    b[n_out - dead:] = -1e6
    return lambda x: x.reshape(len(x), -1) @ w + b


def conv(rng: np.random.Generator, c_in: int, c_out: int) -> Callable[[np.ndarray], np.ndarray]:
    """A valid 3x3 convolution, NCHW."""
    k = rng.normal(0, 1 / np.sqrt(9 * c_in), (c_out, c_in, 3, 3))

    def apply(x: np.ndarray) -> np.ndarray:
        h, w = x.shape[2] - 2, x.shape[3] - 2
        return sum(np.einsum("nchw,oc->nohw", x[:, :, i:i + h, j:j + w], k[:, :, i, j])
                   for i in range(3) for j in range(3))
    return apply


def mlp(seed: int, widths: Sequence[int], n_in: int = 16, dead: int = 0) -> NumpyNet:
    """Dense + ReLU per width, on (N, n_in) inputs; ``dead`` units of the first layer never fire."""
    rng = np.random.default_rng(seed)
    steps: list[Step] = []
    input_shape = (n_in,)
    for i, width in enumerate(widths):
        steps += [(f"fc{i}", "Linear", dense(rng, n_in, width, dead if i == 0 else 0)),
                  (f"act{i}", "ReLU", relu)]
        n_in = width
    return NumpyNet(steps, input_shape)


def cnn(seed: int) -> NumpyNet:
    """(N, 1, 8, 8) -> conv 3 ch -> ReLU -> conv 4 ch -> ReLU -> dense 5 -> ReLU."""
    rng = np.random.default_rng(seed)
    return NumpyNet([("conv0", "Conv2d", conv(rng, 1, 3)), ("act0", "ReLU", relu),
                     ("conv1", "Conv2d", conv(rng, 3, 4)), ("act1", "ReLU", relu),
                     ("fc", "Linear", dense(rng, 4 * 4 * 4, 5, dead=1)), ("act2", "ReLU", relu)],
                    (1, 8, 8))
