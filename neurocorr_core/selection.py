"""Choosing layers by name glob or by kind, the same way for every framework."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from fnmatch import fnmatchcase

from .errors import NeurocorrError
from .interfaces import LayerInfo

Selector = str | Sequence[str] | None


def select_layers(layers: Sequence[LayerInfo], selector: Selector, model: str) -> list[LayerInfo]:
    """The layers matched by ``selector``, in forward order.

    ``selector`` is a glob on layer names (``features.*.relu``), ``kind:KIND`` (one of the
    shared kinds ``activation``, ``conv``, ``dense``, ``pool``, ``norm``, or a framework op
    such as ``kind:relu``), a comma-separated string or a list of those. ``None`` selects
    every activation layer, the seed paper's neurons.
    """
    patterns = _patterns(selector)
    chosen: dict[str, LayerInfo] = {}
    for pattern in patterns:
        hits = [layer for layer in layers if _matches(layer, pattern)]
        if not hits:
            raise NeurocorrError(_no_match(layers, pattern, model))
        chosen.update((layer.name, layer) for layer in hits)
    return sorted(chosen.values(), key=lambda layer: layer.depth)


def _patterns(selector: Selector) -> list[str]:
    if selector is None:
        return ["kind:activation"]
    items = selector.split(",") if isinstance(selector, str) else list(selector)
    patterns = [p.strip() for p in items if p.strip()]
    if not patterns:
        raise NeurocorrError("empty layer selector; give a glob such as 'features.*' or 'kind:activation'")
    return patterns


def _matches(layer: LayerInfo, pattern: str) -> bool:
    if pattern.startswith("kind:"):
        kind = pattern[5:].lower()
        return layer.kind == kind or layer.op.lower() == kind
    return fnmatchcase(layer.name, pattern)


def _no_match(layers: Sequence[LayerInfo], pattern: str, model: str) -> str:
    names = [layer.name for layer in layers]
    if pattern.startswith("kind:"):
        kinds = sorted({layer.kind for layer in layers})
        ops = sorted({layer.op for layer in layers if layer.op})
        return (f"no layer of {model} has kind {pattern[5:]!r}; kinds present: {', '.join(kinds)}; ops "
                f"present (kind:OP picks them too): {', '.join(ops) or 'none'}. "
                "Choose layers with a glob or another kind (see 'neurocorr layers MODEL')")
    close = difflib.get_close_matches(pattern, names, n=5, cutoff=0.3) or names[:5]
    return (f"layer pattern {pattern!r} matches no layer of {model}; closest names: "
            f"{', '.join(close)}. List all with 'neurocorr layers MODEL'")


def containers(layers: Sequence[LayerInfo]) -> set[str]:
    """Names of the layers that hold other listed layers: ``layer1`` holds ``layer1.0.conv1``
    (a Keras ``block`` holds ``block/conv``); ``neurocorr layers`` shows them with ``--all``."""
    held: set[str] = set()
    for layer in layers:
        base = layer.name.partition("#")[0]
        held.update(base[:i] for i, char in enumerate(base) if char in "./")
    return {layer.name for layer in layers if layer.name.partition("#")[0] in held}
