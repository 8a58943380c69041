"""A conformance suite every activation provider passes, for plugin authors' own tests.

Subclass :class:`ProviderConformance` in a test module, set ``provider`` and implement
``make_model`` and ``make_probe``; pytest collects the inherited ``test_*`` methods::

    class TestMyProvider(ProviderConformance):
        provider = MyProvider
        def make_model(self): return build_small_cnn()
        def make_probe(self): return np.random.default_rng(0).random((12, 1, 8, 8), np.float32)

``make_model`` must return a model with at least one activation layer and no layer that
behaves differently in training (or that is evaluated in inference mode).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

from .compare import compare
from .interfaces import KINDS, ActivationProvider, LayerInfo
from .plugins import PluginManager, hookimpl


class ProviderConformance:
    provider: ClassVar[type[ActivationProvider]]

    def make_model(self) -> Any:
        raise NotImplementedError("return a small model of your framework")

    def make_probe(self) -> np.ndarray:
        raise NotImplementedError("return a probe array (N >= 6) the model accepts")

    # -- helpers ------------------------------------------------------------------------
    def _open(self) -> tuple[ActivationProvider, list[LayerInfo], np.ndarray]:
        probe = self.make_probe()
        prov = self.provider(self.make_model())
        return prov, prov.layers(probe[:2]), probe

    def _run(self, prov: ActivationProvider, batches: list[np.ndarray],
             names: list[str]) -> list[dict[str, np.ndarray]]:
        return list(prov.activations(iter(batches), names))

    # -- the suite --------------------------------------------------------------------------
    def test_name_and_accepts(self) -> None:
        assert isinstance(self.provider.name, str) and self.provider.name
        assert self.provider.accepts(self.make_model())
        assert not self.provider.accepts(object())
        assert not self.provider.accepts("/nonexistent/model.unknown-suffix")

    def test_layers_are_described(self) -> None:
        _, layers, _ = self._open()
        assert layers, "a model must expose at least one layer"
        assert len({layer.name for layer in layers}) == len(layers), "layer names must be unique"
        depths = [layer.depth for layer in layers]
        assert depths == sorted(depths) and len(set(depths)) == len(depths), "layers in forward order"
        for layer in layers:
            assert isinstance(layer, LayerInfo)
            assert all(isinstance(s, int) and s > 0 for s in layer.shape), layer
            assert layer.kind in KINDS, layer
        assert any(layer.kind == "activation" for layer in layers), "no activation layer found"

    def test_activations_shapes_and_dtype(self) -> None:
        prov, layers, probe = self._open()
        names = [layer.name for layer in layers]
        outs = self._run(prov, [probe[:4], probe[4:]], names)
        assert len(outs) == 2
        for out, n in zip(outs, (4, len(probe) - 4), strict=True):
            assert set(out) == set(names)
            for layer in layers:
                arr = out[layer.name]
                assert arr.dtype == np.float32, (layer.name, arr.dtype)
                assert arr.shape == (n, *layer.shape), (layer.name, arr.shape, layer.shape)
                assert np.isfinite(arr).all()

    def test_only_requested_layers(self) -> None:
        prov, layers, probe = self._open()
        out = self._run(prov, [probe], [layers[-1].name])[0]
        assert list(out) == [layers[-1].name]

    def test_deterministic_and_batch_independent(self) -> None:
        prov, layers, probe = self._open()
        names = [layer.name for layer in layers]
        whole = self._run(prov, [probe], names)[0]
        parts = self._run(prov, [probe[:2], probe[2:5], probe[5:]], names)
        again = self._run(prov, [probe], names)[0]
        for name in names:
            joined = np.concatenate([p[name] for p in parts])
            np.testing.assert_allclose(joined, whole[name], rtol=1e-5, atol=1e-5, err_msg=name)
            np.testing.assert_array_equal(again[name], whole[name], err_msg=name)

    def test_self_comparison_is_perfect(self) -> None:
        pm = PluginManager()
        if self.provider.name not in pm.names("provider"):
            pm.register(_provider_plugin(self.provider), f"under-test-{self.provider.name}")
        if "pearson" not in pm.names("metric"):
            import pytest

            pytest.skip("needs the pearson metric: pip install neurocorr-pearson")
        model, probe = self.make_model(), self.make_probe()
        name = self.provider.name
        result = compare(model, model, probe, provider_a=name, provider_b=name, plugin_manager=pm)
        live = sum(lr.neurons - lr.dead for lr in result.layers_a)
        total = sum(lr.neurons for lr in result.layers_a)
        assert result.score.a_to_b == result.score.b_to_a
        np.testing.assert_allclose(result.score.a_to_b * total, live, rtol=1e-5)


def _provider_plugin(cls: type[ActivationProvider]) -> object:
    @hookimpl
    def neurocorr_activation_providers() -> list[type[ActivationProvider]]:
        return [cls]

    return SimpleNamespace(neurocorr_activation_providers=neurocorr_activation_providers)
