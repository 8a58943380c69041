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

from itertools import pairwise
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

from neurocorr_core.compare import compare
from neurocorr_core.hookspecs import hookimpl
from neurocorr_core.interfaces import KINDS, ActivationProvider, LayerInfo, Metric
from neurocorr_core.plugins import PluginManager
from neurocorr_core.views import apply_view


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

    def test_channel_means_match_the_channel_view(self) -> None:
        if not self.provider.channel_means:
            return  # an optional capability: the core takes the means itself
        prov, layers, probe = self._open()
        names = [layer.name for layer in layers]
        raw = self._run(prov, [probe], names)[0]
        activations: Any = prov.activations  # the keyword comes with the class's flag
        means = list(activations(iter([probe[:3], probe[3:]]), names, channel_means=True))
        for layer in layers:
            got = np.concatenate([m[layer.name] for m in means])
            assert got.dtype == np.float32, (layer.name, got.dtype)
            assert got.ndim <= 2, (layer.name, got.shape)  # the spatial axes are gone
            np.testing.assert_allclose(apply_view(got, "channel"), apply_view(raw[layer.name], "channel"),
                                       rtol=1e-5, atol=1e-6, err_msg=layer.name)

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


class MetricConformance:
    """A conformance suite for similarity metrics (:class:`neurocorr_core.Metric` subclasses).

    Subclass it in a test module and set ``metric``; pytest collects the inherited ``test_*``
    methods::

        class TestMyMetric(MetricConformance):
            metric = MyMetric
            plugin = neurocorr_mymetric      # optional: the module with the hook implementation

    It checks the contract the core relies on: a ``name`` and a ``level``; ``compute()`` of
    shape (n_a, n_b) for neuron-level or (layers_a, layers_b) for layer-level metrics, float64;
    ``compute()`` does not consume the state; the result does not depend on how the probe is cut
    into batches; merging shards equals one pass; merging a metric over other layer sizes is
    refused; ``constant()`` flags exactly the constant neurons (and a neuron-level ``compute()``
    is NaN on their rows and columns); ``count`` is the number of samples seen; and a layer
    compared with itself scores ``self_similarity`` (set it to None for a metric without such a
    value). Override :meth:`make_metric` to pass options, or the class attributes to change the
    layer sizes, number of samples and tolerances.
    """

    metric: ClassVar[type[Metric]]
    #: The plugin object or module whose hook returns ``metric`` (checked when set).
    plugin: ClassVar[object | None] = None
    sizes_a: ClassVar[tuple[int, ...]] = (3, 5)
    sizes_b: ClassVar[tuple[int, ...]] = (4, 2, 3)
    samples: ClassVar[int] = 60
    self_similarity: ClassVar[float | None] = 1.0
    rtol: ClassVar[float] = 1e-5
    atol: ClassVar[float] = 1e-7

    def make_metric(self, sizes_a: tuple[int, ...], sizes_b: tuple[int, ...]) -> Metric:
        return self.metric(sizes_a, sizes_b)

    def make_data(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Related data for the two models: (samples, sum(sizes_a)), (samples, sum(sizes_b)),
        float32, with an offset so that a metric that does not centre well shows it."""
        rng = np.random.default_rng(seed)
        n_a, n_b = sum(self.sizes_a), sum(self.sizes_b)
        x = rng.normal(size=(self.samples, n_a))
        mix = rng.normal(size=(n_a, n_b))
        y = np.tanh(x @ mix / np.sqrt(n_a)) + 0.3 * rng.normal(size=(self.samples, n_b))
        return (x + 3.0).astype(np.float32), (y - 2.0).astype(np.float32)

    # -- helpers ------------------------------------------------------------------------
    def _fed(self, batches: list[tuple[np.ndarray, np.ndarray]],
             sizes: tuple[tuple[int, ...], tuple[int, ...]] | None = None) -> Metric:
        metric = self.make_metric(*(sizes or (self.sizes_a, self.sizes_b)))
        for x, y in batches:
            metric.update(x, y)
        return metric

    def _shape(self, sizes_a: tuple[int, ...], sizes_b: tuple[int, ...]) -> tuple[int, int]:
        if self.metric.level == "layer":
            return len(sizes_a), len(sizes_b)
        return sum(sizes_a), sum(sizes_b)

    def _close(self, got: np.ndarray, want: np.ndarray, what: str) -> None:
        np.testing.assert_allclose(got, want, rtol=self.rtol, atol=self.atol, equal_nan=True, err_msg=what)

    # -- the suite --------------------------------------------------------------------------
    def test_name_and_level(self) -> None:
        assert isinstance(self.metric.name, str) and self.metric.name, "a metric needs a non-empty name"
        assert self.metric.level in ("neuron", "layer"), f"level must be 'neuron' or 'layer', not {self.metric.level!r}"

    def test_provided_by_its_plugin(self) -> None:
        if self.plugin is None:
            import pytest

            pytest.skip("set 'plugin' to the module that implements neurocorr_similarity_metrics")
        pm = PluginManager(entry_points=False, plugins=[self.plugin])
        assert pm.metric(self.metric.name) is self.metric

    def test_compute_shape_and_dtype(self) -> None:
        x, y = self.make_data()
        out = self._fed([(x, y)]).compute()
        assert isinstance(out, np.ndarray) and out.dtype == np.float64, type(out)
        assert out.shape == self._shape(self.sizes_a, self.sizes_b), out.shape
        assert np.isfinite(out).all(), "no constant neuron here, so every value must be defined"

    def test_compute_does_not_consume(self) -> None:
        x, y = self.make_data()
        half = len(x) // 2
        metric = self._fed([(x[:half], y[:half])])
        first = metric.compute()
        self._close(metric.compute(), first, "compute() twice")
        metric.update(x[half:], y[half:])
        self._close(metric.compute(), self._fed([(x, y)]).compute(), "update after compute()")

    def test_batch_split_invariance(self) -> None:
        x, y = self.make_data()
        cuts = [0, 7, 8, 31, len(x)]
        parts = [(x[a:b], y[a:b]) for a, b in pairwise(cuts)]
        self._close(self._fed(parts).compute(), self._fed([(x, y)]).compute(), "batches of 7, 1, 23, ...")

    def test_merge_equals_one_pass(self) -> None:
        x, y = self.make_data()
        first, second = self._fed([(x[:25], y[:25])]), self._fed([(x[25:], y[25:])])
        first.merge(second)
        assert first.count in (0, len(x)), f"count after merge: {first.count}, expected {len(x)}"
        self._close(first.compute(), self._fed([(x, y)]).compute(), "merge of two shards")

    def test_merge_refuses_other_sizes(self) -> None:
        x, y = self.make_data()
        metric = self._fed([(x, y)])
        other_a = (*self.sizes_a[:-1], self.sizes_a[-1] + 1)
        other = self.make_metric(other_a, self.sizes_b)
        try:
            metric.merge(other)
        except Exception:  # any clear error will do; a silent merge will not
            return
        raise AssertionError("merge() accepted a metric over other layer sizes")

    def test_count(self) -> None:
        x, y = self.make_data()
        count = self._fed([(x[:10], y[:10]), (x[10:], y[10:])]).count
        assert count in (0, len(x)), f"count is {count} after {len(x)} samples"

    def test_constant_neurons(self) -> None:
        x, y = self.make_data()
        dead_a, dead_b = 1, sum(self.sizes_b) - 1
        x[:, dead_a], y[:, dead_b] = 5.0, -1.0
        metric = self._fed([(x[:20], y[:20]), (x[20:], y[20:])])
        mask_a, mask_b = metric.constant()
        assert np.asarray(mask_a).dtype == bool and np.asarray(mask_b).dtype == bool
        assert np.flatnonzero(mask_a).tolist() == [dead_a], np.flatnonzero(mask_a)
        assert np.flatnonzero(mask_b).tolist() == [dead_b], np.flatnonzero(mask_b)
        if self.metric.level == "neuron":
            out = metric.compute()
            assert np.isnan(out[dead_a]).all() and np.isnan(out[:, dead_b]).all(), "constant -> NaN"
            live = np.delete(np.delete(out, dead_a, 0), dead_b, 1)
            assert np.isfinite(live).all()

    def test_self_similarity(self) -> None:
        if self.self_similarity is None:
            import pytest

            pytest.skip("this metric declares no value for a layer compared with itself")
        x, _ = self.make_data()
        out = self._fed([(x, x)], (self.sizes_a, self.sizes_a)).compute()
        self._close(np.diag(out), np.full(out.shape[0], self.self_similarity), "a layer against itself")
