"""compare(): probe -> providers -> neuron views -> metric -> matching -> aggregation."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import NeurocorrError
from .interfaces import ActivationProvider, LayerInfo, Metric
from .models import describe, resolve_model
from .plugins import PluginManager, get_plugin_manager
from .probe import Probe, load_probe
from .result import Comparison, LayerResult, Score
from .score import layer_table, network_score, neuron_depths, penalise, similarity_scores
from .selection import Selector, select_layers
from .views import apply_view, check_view, neuron_count


@dataclass
class Side:
    """One model of a comparison, loaded, with its selected layers."""

    label: str
    provider: ActivationProvider
    layers: list[LayerInfo]
    sizes: list[int]


def open_model(model: object, *, provider: str | None = None, pm: PluginManager | None = None,
               **options: Any) -> ActivationProvider:
    """Load ``model`` (object, path or ``module:callable``) with the provider that handles it."""
    pm = pm or get_plugin_manager()
    obj = resolve_model(model)
    if isinstance(obj, (str, os.PathLike)) and not os.path.exists(obj):
        raise NeurocorrError(f"model file {os.fspath(obj)!r} does not exist; give a path, "
                             "or a 'module:callable' reference that builds the model")
    cls = pm.provider(provider) if provider else pm.provider_for(obj)
    return cls(obj, **options)


def compare(
    model_a: object,
    model_b: object,
    probe: str | os.PathLike[str] | np.ndarray | Probe,
    *,
    metric: str = "pearson",
    matching: str = "max",
    neurons: str = "channel",
    layers_a: Selector = None,
    layers_b: Selector = None,
    depth_penalty: str = "paper",
    absolute: bool = True,
    batch_size: int = 256,
    provider_a: str | None = None,
    provider_b: str | None = None,
    options_a: dict[str, Any] | None = None,
    options_b: dict[str, Any] | None = None,
    probe_b: str | os.PathLike[str] | np.ndarray | Probe | None = None,
    progress: bool = False,
    plugin_manager: PluginManager | None = None,
) -> Comparison:
    """Compare two networks by their neurons' outputs over the same probe.

    ``probe``: an array (NCHW images or (N, features)), a ``.npy``/IDX path or a built-in
    name (``digits``, ``fashion-mnist``). ``neurons``: ``channel`` (spatial mean per
    channel) or ``position`` (every C x H x W element). ``layers_a``/``layers_b``: globs or
    ``kind:KIND`` (default: every activation layer). ``depth_penalty``: ``paper`` divides
    by ``|d(i) - d(j)| + 1``, ``none`` does not. ``absolute``: match on |r| (the paper) or
    signed r. ``probe_b``: the same samples prepared for model B (another resolution or
    normalisation), same length and order; default: ``probe``. Returns a
    :class:`Comparison` with the network score in both directions.
    """
    pm = plugin_manager or get_plugin_manager()
    check_view(neurons)
    probe = load_probe(probe)
    second = probe if probe_b is None else load_probe(probe_b)
    if len(probe) < 2:
        raise NeurocorrError(f"probe {probe.name!r} has {len(probe)} sample(s); a correlation "
                             "needs at least 2 (the paper uses 10 or more)")
    if len(second) != len(probe):
        raise NeurocorrError(f"the probes differ in length: {len(probe)} samples for A, {len(second)} "
                             "for B; probe_b must hold the same samples as probe, in the same order")
    metric_cls, matcher = pm.metric(metric), pm.matching(matching)()
    penalise(np.zeros((0, 0)), np.zeros(0), np.zeros(0), depth_penalty)  # validate early
    a = _side(model_a, provider_a, options_a, layers_a, probe, neurons, pm)
    b = _side(model_b, provider_b, options_b, layers_b, second, neurons, pm)
    try:
        acc = metric_cls(a.sizes, b.sizes)
        for x, y in _progress(_stream(a, b, probe, second, neurons, batch_size), progress,
                              -(-len(probe) // batch_size)):
            acc.update(x, y)
    finally:
        a.provider.close()
        b.provider.close()
    config = {"metric": metric, "matching": matching, "neurons": neurons,
              "layers_a": layers_a, "layers_b": layers_b, "depth_penalty": depth_penalty,
              "absolute": absolute, "batch_size": batch_size, "probe": probe.name,
              "probe_b": second.name,
              "provider_a": a.provider.name, "provider_b": b.provider.name}
    return _aggregate(acc, a, b, matcher, depth_penalty, absolute, len(probe), config, pm)


def _side(model: object, provider: str | None, options: dict[str, Any] | None,
          selector: Selector, probe: Probe, view: str, pm: PluginManager) -> Side:
    prov = open_model(model, provider=provider, pm=pm, **(options or {}))
    label = describe(model)
    layers = select_layers(prov.layers(next(probe.head(2).batches(2))), selector, label)
    return Side(label, prov, layers, [neuron_count(layer.shape, view) for layer in layers])


def _stream(a: Side, b: Side, probe_a: Probe, probe_b: Probe, view: str,
            batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    outs_a = a.provider.activations(probe_a.batches(batch_size), [la.name for la in a.layers])
    outs_b = b.provider.activations(probe_b.batches(batch_size), [lb.name for lb in b.layers])
    for out_a, out_b in zip(outs_a, outs_b, strict=True):
        yield _neurons(out_a, a, view), _neurons(out_b, b, view)


def _neurons(outputs: dict[str, np.ndarray], side: Side, view: str) -> np.ndarray:
    parts = []
    for layer in side.layers:
        out = outputs[layer.name]
        bad = out.size - int(np.isfinite(out).sum())
        if bad:
            raise NeurocorrError(f"layer {layer.name!r} of {side.label} produced {bad} NaN/Inf "
                                 "values on this probe; check the model's weights and the "
                                 "probe's value range, or leave the layer out")
        parts.append(apply_view(out, view))
    return np.concatenate(parts, axis=1).astype(np.float32, copy=False)


def _aggregate(acc: Metric, a: Side, b: Side, matcher: Any, penalty: str, absolute: bool,
               samples: int, config: dict[str, Any], pm: PluginManager) -> Comparison:
    if acc.level != "neuron":
        raise NeurocorrError(f"metric {acc.name!r} is layer-level; the network score needs a "
                             "neuron-level metric such as pearson")
    scores = similarity_scores(acc.compute(), absolute)
    ab, ba = network_score(penalise(scores, neuron_depths(a.sizes), neuron_depths(b.sizes),
                                    penalty), matcher)
    dead_a, dead_b = acc.constant()
    return Comparison(
        model_a=a.label, model_b=b.label, samples=samples,
        score=Score(ab.score, ba.score),
        layers_a=_layer_results(a, dead_a, ab.value),
        layers_b=_layer_results(b, dead_b, ba.value),
        layer_table=layer_table(scores, a.sizes, b.sizes, matcher),
        layer_table_ba=layer_table(scores.T, b.sizes, a.sizes, matcher),
        partner_a=ab.partner, partner_b=ba.partner,
        config=config, versions=pm.versions(),
    )


def _layer_results(side: Side, dead: np.ndarray, values: np.ndarray) -> list[LayerResult]:
    bounds = np.cumsum([0, *side.sizes])
    return [LayerResult(layer, i, side.sizes[i], int(dead[bounds[i]:bounds[i + 1]].sum()),
                        float(values[bounds[i]:bounds[i + 1]].mean()))
            for i, layer in enumerate(side.layers)]


def _progress(items: Iterator[Any], enabled: bool, total: int) -> Iterator[Any]:
    if not enabled or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return iter(tqdm(items, total=total, desc="probe batches", unit="batch", leave=False))

