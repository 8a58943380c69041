"""The bad-input matrix of the Python API: ``compare()``, ``grid()`` and ``load_probe()`` given
wrong probes, counts and broken metric plugins raise NeurocorrError with words that name the
problem and the fix (docs/api.md promises it for every user error), and leave the file system
as it was.

Metric plugins are checked by the core wherever results are finished (compare, grid, sharded
runs, tiles): shape, NaN only where ``Metric.undefined`` allows it, values within
``Metric.bounds``; an exception inside a plugin becomes a PluginError naming the metric and its
plugin, with the original exception as ``__cause__``. The positive controls show the checks
accept what the contract allows (NaN for constant neurons, a declared wider range).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import bad_input
from neurocorr_core import Metric, NeurocorrError, PluginError, compare, hookimpl, load_probe
from neurocorr_scale.grid import GridConfig, GridModel, grid
from numpy_models import mlp


# -- metric plugins, honest and broken ---------------------------------------------------------------
class Honest(Metric):
    """Pearson r from stored activations: NaN exactly for constant neurons (the contract)."""

    name = "honest"
    tiles = True

    def __init__(self, sizes_a: Sequence[int], sizes_b: Sequence[int], *, tiled: bool = False,
                 samples: int | None = None, **options: Any) -> None:
        super().__init__(sizes_a, sizes_b, **options)
        self.x: list[np.ndarray] = []
        self.y: list[np.ndarray] = []

    @classmethod
    def tiled_state_bytes(cls, sizes_a, sizes_b, samples):
        return 8 * samples * (sum(sizes_a) + sum(sizes_b))

    def update(self, x, y):
        self.x.append(np.array(x, dtype=np.float64))
        self.y.append(np.array(y, dtype=np.float64))

    def merge(self, other):
        self.x += other.x
        self.y += other.y

    def compute(self):
        x, y = np.concatenate(self.x), np.concatenate(self.y)
        x, y = x - x.mean(0), y - y.mean(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (x.T @ y) / np.outer(np.sqrt((x * x).sum(0)), np.sqrt((y * y).sum(0)))
        return np.clip(r, -1, 1)

    def tile(self, rows, cols):
        return np.array(self.compute()[rows, cols])

    def constant(self):
        x, y = np.concatenate(self.x), np.concatenate(self.y)
        return np.ptp(x, axis=0) == 0, np.ptp(y, axis=0) == 0


def broken(name: str, **methods: Any) -> type[Metric]:
    """An Honest metric with some methods replaced (``bounds``/``level`` as attributes)."""
    return type(name.title().replace("-", ""), (Honest,), {"name": name, "__module__": __name__, **methods})


def _raise(exc: BaseException):
    def method(self, *args, **kwargs):
        raise exc
    return method


def _shape(self):
    return np.full((sum(self.sizes_a), sum(self.sizes_b)), 7.0)


BROKEN = [
    broken("all-nan", compute=lambda self: np.full((sum(self.sizes_a), sum(self.sizes_b)), np.nan)),
    broken("seven", compute=_shape),
    broken("one-inf", compute=lambda self: np.where(np.eye(sum(self.sizes_a), sum(self.sizes_b)) > 0,
                                                    np.inf, 0.0)),
    broken("wrong-shape", compute=lambda self: np.zeros((2, 2))),
    broken("not-an-array", compute=lambda self: "r"),
    broken("complex-values", compute=lambda self: np.zeros((sum(self.sizes_a), sum(self.sizes_b)), complex)),
    broken("bad-update", update=_raise(ZeroDivisionError("boom in update"))),
    broken("bad-compute", compute=_raise(IndexError("index 99 is out of bounds"))),
    broken("bad-merge", merge=_raise(AttributeError("no attribute 'x'"))),
    broken("bad-masks", constant=lambda self: (np.zeros(3, bool), np.zeros(2, bool))),
    broken("bad-bounds", bounds="wide"),
    broken("bad-tiles", tile=lambda self, rows, cols: np.full((rows.stop - rows.start, cols.stop - cols.start), 7.0)),
    broken("layer-range", level="layer", compute=lambda self: np.full((len(self.sizes_a), len(self.sizes_b)), 3.0)),
    broken("layer-shape", level="layer", compute=lambda self: np.zeros((9, 9))),
    broken("scaled", bounds=(0.0, 10.0), compute=lambda self: np.abs(Honest.compute(self)) * 5),
    broken("user-error", update=_raise(NeurocorrError("user-error: give me two layers"))),
]


@pytest.fixture
def pm(pm):
    """The numpy provider, the built-in metrics and every test metric."""
    @hookimpl
    def neurocorr_similarity_metrics():
        return [Honest, *BROKEN]
    pm.register(SimpleNamespace(neurocorr_similarity_metrics=neurocorr_similarity_metrics), "test-metrics")
    return pm


@pytest.fixture
def probe():
    return np.random.default_rng(3).normal(size=(48, 16)).astype(np.float32)


def refused(tmp_path, call, *words: str, cause: type[BaseException] | None = None) -> NeurocorrError:
    """``call()`` raises NeurocorrError holding ``words`` and leaves ``tmp_path`` as it was."""
    before = bad_input.snapshot(tmp_path)
    with pytest.raises(NeurocorrError) as info:
        call()
    bad_input.assert_unchanged(before, bad_input.snapshot(tmp_path))
    message = str(info.value)
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} missing from: {message}"
    assert "\n" not in message
    if cause is not None:
        assert isinstance(info.value.__cause__, cause), info.value.__cause__
    return info.value


# -- probes ---------------------------------------------------------------------------------------------
class FakeTensor:
    """What the core sees of a torch tensor without importing torch (plugins/neurocorr-torch
    tests the real one)."""

    def detach(self): ...
    def numpy(self): ...


FakeTensor.__module__ = "torch"

PROBES = [  # (probe, words)
    ([[0.0] * 16] * 10, ["a probe must be", "builtins.list", "np.asarray(values"]),
    ((x for x in range(3)), ["builtins.generator", "convert it to a numpy array"]),
    (None, ["NoneType", "numpy array"]),
    ({"x": 1}, ["builtins.dict", "np.asarray"]),
    (FakeTensor(), ["torch.FakeTensor", "tensor.detach().cpu().numpy()"]),
    (np.ones((10, 16), dtype=np.complex64), ["complex", "pass real values"]),
    (np.array([[object()] * 16] * 10), ["dtype object", "astype(np.float32)"]),
    (np.array([["a"] * 16] * 10), ["dtype <U1", "astype(np.float32)"]),
    (np.zeros((10, 0), dtype=np.float32), ["hold no values"]),
    (np.zeros(10, dtype=np.float32), ["shape (10,)", "(N, features)"]),
    (b"probe.npy", ["builtins.bytes", "numpy array"]),
    ("no-such-probe.npy", ["neither a file nor a built-in", "digits"]),
]


@pytest.mark.parametrize(("bad", "words"), PROBES, ids=[repr(w[0]) for _, w in PROBES])
def test_compare_refuses_a_bad_probe(tmp_path, pm, monkeypatch, bad, words):
    monkeypatch.chdir(tmp_path)
    refused(tmp_path, lambda: compare(mlp(0, [5]), mlp(1, [4]), bad, plugin_manager=pm), *words)


def test_a_folder_is_not_a_probe(tmp_path):
    (tmp_path / "images").mkdir()
    refused(tmp_path, lambda: load_probe(tmp_path / "images"), "is a folder", ".npy or IDX")


@pytest.mark.parametrize("limit", [0, -5, 1.5, True, "10"])
def test_load_probe_refuses_a_bad_limit(tmp_path, probe, limit):
    refused(tmp_path, lambda: load_probe(probe, limit=limit), "probe limit", "whole number of at least 1")


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, None])
def test_compare_refuses_a_bad_batch_size(tmp_path, pm, probe, batch_size):
    refused(tmp_path, lambda: compare(mlp(0, [5]), mlp(1, [4]), probe, batch_size=batch_size, plugin_manager=pm),
            "batch size", "whole number of at least 1")


def test_nan_in_the_probe_names_the_samples(tmp_path, pm, probe):
    probe[[7, 30], 3] = np.nan
    refused(tmp_path, lambda: compare(mlp(0, [5]), mlp(1, [4]), probe, batch_size=32, plugin_manager=pm),
            "2 NaN/Inf value(s)", "2 sample(s): 7, 30", "clean the probe")


def test_a_file_probe_is_checked_when_loaded(tmp_path):
    np.save(tmp_path / "c.npy", np.ones((10, 4), dtype=np.complex128))
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'," + b" " * 10)
    refused(tmp_path, lambda: load_probe(tmp_path / "c.npy"), "complex128", "pass real values")
    refused(tmp_path, lambda: load_probe(tmp_path / "bad.npy"), "not a valid .npy file")


# -- metric plugins ---------------------------------------------------------------------------------------
METRICS = [  # (metric, compare keywords, words, the exception kept as __cause__)
    ("all-nan", {}, ["'all-nan'", "test_bad_input_api", "NaN value(s) for pairs of neurons that vary",
                     "report it"], None),
    ("seven", {}, ["'seven'", "outside its declared range [-1, 1]", "7.0 at [0, 0]"], None),
    ("one-inf", {}, ["infinite value(s)", "Metric.bounds"], None),
    ("wrong-shape", {}, ["shape (2, 2)", "the contract is (5, 4)"], None),
    ("not-an-array", {}, ["compute() returned str", "real numbers"], None),
    ("complex-values", {}, ["dtype complex128", "real numbers"], None),
    ("bad-update", {}, ["'bad-update'", "update() raised ZeroDivisionError: boom in update"], ZeroDivisionError),
    ("bad-compute", {}, ["compute() raised IndexError: index 99"], IndexError),
    ("bad-merge", {"shards": 2}, ["'bad-merge'", "merge() raised AttributeError"], AttributeError),
    ("bad-masks", {}, ["constant() returned masks of shapes (3,) and (2,)", "(5,) and (4,)"], None),
    ("bad-bounds", {}, ["declares bounds 'wide'", "(low, high)"], None),
    ("bad-tiles", {"memory_budget": "1MB", "wide": True}, ["tile() returned", "outside its declared range"], None),
    ("layer-range", {}, ["'layer-range'", "outside its declared range", "3.0"], None),
    ("layer-shape", {}, ["shape (9, 9)", "one value per pair of layers"], None),
    ("user-error", {}, ["user-error: give me two layers"], None),
]


@pytest.mark.parametrize(("metric", "options", "words", "cause"), METRICS, ids=[m[0] for m in METRICS])
def test_a_broken_metric_plugin_is_named(tmp_path, pm, probe, metric, options, words, cause):
    options = dict(options)
    a, b = (mlp(0, [300]), mlp(1, [250])) if options.pop("wide", False) else (mlp(0, [5]), mlp(1, [4]))
    error = refused(tmp_path, lambda: compare(a, b, probe, metric=metric, plugin_manager=pm, **options),
                    *words, cause=cause)
    if metric == "user-error":  # a plugin's own NeurocorrError is the user's message, unchanged
        assert type(error) is NeurocorrError and str(error) == "user-error: give me two layers"
    else:
        assert isinstance(error, PluginError)


def test_a_broken_metric_is_named_in_a_grid(tmp_path, pm, probe):
    models = [GridModel(f"m{i}", mlp(i, [5])) for i in range(3)]
    refused(tmp_path, lambda: grid(models, probe, shards=2, plugin_manager=pm, config=GridConfig(metric="bad-update")),
            "'bad-update'", "update() raised ZeroDivisionError", cause=ZeroDivisionError)


def test_nan_for_constant_neurons_is_the_contract(pm, probe):
    """Positive control: NaN exactly where neurons are constant passes, and scores as Pearson."""
    a, b = mlp(0, [6, 5], dead=2), mlp(1, [4])
    honest = compare(a, b, probe, metric="honest", plugin_manager=pm)
    pearson = compare(a, b, probe, metric="pearson", plugin_manager=pm)
    assert honest.layers_a[0].dead == 2
    assert honest.score.symmetric == pytest.approx(pearson.score.symmetric, abs=1e-6)
    wide_a, wide_b = mlp(0, [300], dead=3), mlp(1, [250])
    tiled = compare(wide_a, wide_b, probe, metric="honest", memory_budget="1MB", plugin_manager=pm)
    assert tiled.config["tiles"] is not None
    full = compare(wide_a, wide_b, probe, metric="pearson", plugin_manager=pm)
    assert tiled.score.symmetric == pytest.approx(full.score.symmetric, abs=1e-6)


def test_a_declared_range_is_accepted(pm, probe):
    """Positive control: values in [0, 10] pass a metric that declares those bounds."""
    a, b = mlp(0, [5]), mlp(1, [4])
    scaled = compare(a, b, probe, metric="scaled", plugin_manager=pm)
    pearson = compare(a, b, probe, metric="pearson", plugin_manager=pm)
    assert scaled.score.symmetric == pytest.approx(5 * pearson.score.symmetric, abs=1e-6)
    assert not math.isnan(scaled.score.symmetric)
