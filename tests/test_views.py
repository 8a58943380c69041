"""Neuron views, and the channel means a provider may take inside its framework."""

from collections.abc import Iterable, Iterator, Sequence
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest

from neurocorr_core import NeurocorrError, compare, hookimpl
from neurocorr_core.views import _finite, apply_view, neuron_batches
from neurocorr_testing import ProviderConformance
from numpy_models import NumpyProvider, cnn


class MeansProvider(NumpyProvider):
    """The numpy test provider, taking channel means itself and counting when it is asked to."""

    name = "numpy-means"
    channel_means = True
    asked: ClassVar[list[bool]] = []

    def activations(self, batches: Iterable[np.ndarray], layers: Sequence[str], *,
                    channel_means: bool = False) -> Iterator[dict[str, np.ndarray]]:
        MeansProvider.asked.append(channel_means)
        for out in super().activations(batches, layers):
            yield {name: _spatial_mean(a) if channel_means else a for name, a in out.items()}


def _spatial_mean(a: np.ndarray) -> np.ndarray:
    return a.mean(axis=tuple(range(2, a.ndim)), dtype=np.float64).astype(np.float32) if a.ndim > 2 else a


@hookimpl
def neurocorr_activation_providers():
    return [MeansProvider]


class TestMeansProviderConformance(ProviderConformance):
    provider = MeansProvider

    def make_model(self):
        return cnn(0)

    def make_probe(self):
        return np.random.default_rng(0).random((12, 1, 8, 8), np.float32)


@pytest.fixture
def means_pm(pm):
    pm.register(SimpleNamespace(neurocorr_activation_providers=neurocorr_activation_providers), "numpy-means")
    MeansProvider.asked.clear()
    return pm


@pytest.mark.parametrize("view", ["channel", "position"])
def test_pushdown_only_in_channel_view_and_same_scores(means_pm, view):
    probe = np.random.default_rng(1).random((64, 1, 8, 8), np.float32)
    core = compare(cnn(0), cnn(1), probe, neurons=view, provider_a="numpy-test", provider_b="numpy-test",
                   plugin_manager=means_pm)
    assert MeansProvider.asked == []
    pushed = compare(cnn(0), cnn(1), probe, neurons=view, provider_a="numpy-means", provider_b="numpy-means",
                     plugin_manager=means_pm)
    assert MeansProvider.asked == [view == "channel"] * 2
    assert [lr.neurons for lr in pushed.layers_a] == [lr.neurons for lr in core.layers_a]
    np.testing.assert_allclose(pushed.score.a_to_b, core.score.a_to_b, rtol=1e-6)
    np.testing.assert_allclose(pushed.score.b_to_a, core.score.b_to_a, rtol=1e-6)


def test_channel_view_is_the_spatial_mean_and_position_the_flat_map():
    out = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(apply_view(out, "channel"), out.mean(axis=(2, 3)))
    np.testing.assert_array_equal(apply_view(out, "position"), out.reshape(2, 12))
    assert apply_view(np.ones(5, np.float32), "channel").shape == (5, 1)


def test_non_finite_outputs_are_refused_with_the_layer_named():
    model = cnn(0)
    prov = NumpyProvider(model)
    probe = np.full((4, 1, 8, 8), np.nan, np.float32)
    name = prov.layers(probe[:2])[0].name
    with pytest.raises(NeurocorrError, match=f"layer '{name}' of net-x produced .* NaN/Inf"):
        next(neuron_batches(prov, [probe], [name], "position", "net-x"))


def test_huge_finite_outputs_are_not_mistaken_for_inf():
    big = np.full((4, 1000), 1e36, np.float32)  # finite values whose float32 sum overflows
    with np.errstate(over="ignore"):
        assert not np.isfinite(big.sum())
    assert _finite(big, "act0", "net-x") is big
    big[2, 7] = np.inf
    with pytest.raises(NeurocorrError, match="produced 1 NaN/Inf values"):
        _finite(big, "act0", "net-x")


@pytest.mark.parametrize(("op", "kind"), [("Conv2d", "conv"), ("Conv2D", "conv"), ("DepthwiseConv2D", "conv"),
                                          ("SeparableConv2D", "conv"), ("Linear", "dense"), ("Dense", "dense"),
                                          ("Gemm", "dense"), ("ReLU", "activation"), ("MaxPool2d", "pool"),
                                          ("BatchNorm2d", "norm"), ("Dropout", "other")])
def test_every_framework_op_gets_its_shared_kind(op, kind):
    from neurocorr_core.interfaces import kind_of

    assert kind_of(op) == kind
