"""Capturing intermediate tensors of a TensorFlow SavedModel.

A SavedModel keeps no Keras layer objects, only traced functions (signatures). What can be
captured honestly is what the signature's graph computes: the signature function is frozen
(variables become constants and the nested function calls are inlined, as tf2onnx does), and
every name scope one level below the model's own scope (Keras names it after the layer:
``sequential_1/conv2d_1``) becomes a layer whose output is the one float tensor that leaves the
scope. A pruned function from the input to the chosen tensors runs once per batch.

Layer names are these scope names, which TensorFlow may have made unique with a suffix
(``conv1_1`` for the Keras layer ``conv1``): list them with ``neurocorr layers DIR``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurocorr_core import NeurocorrError
from neurocorr_core.interfaces import kind_of

from .keras_models import IsLast, multi_input_error
from .layout import FIRST, LAST, spatial_axes

#: Ops that say what a scope is, strongest first (a conv scope also holds BiasAdd and Relu).
_PRIORITY = ("conv", "dense", "norm", "pool", "activation")
#: TensorFlow ops the shared kind_of() does not know: global pooling reduces with Mean/Max,
#: layer normalisation shows up as Rsqrt.
_TF_KINDS = {"Mean": "pool", "Max": "pool", "Rsqrt": "norm"}
_BOOKKEEPING = {"Const", "Placeholder", "NoOp", "Identity", "IdentityN", "ReadVariableOp",
                "Shape", "StridedSlice", "Pack", "Squeeze", "Reshape", "Cast"}


@dataclass(frozen=True)
class _Entry:
    name: str
    tensor: str
    op: str
    kind: str
    data_format: str | None


class SavedModelGraph:
    """One signature of a SavedModel (a directory or a ``tf.saved_model.load`` result)."""

    def __init__(self, source: Any, signature: str, label: str) -> None:
        import tensorflow as tf

        self.label = label
        loaded = _load(source) if isinstance(source, (str, os.PathLike)) else source
        function = _signature(loaded, signature, label)
        _, specs = function.structured_input_signature
        flat = list(function.structured_input_signature[0]) + list(specs.values())
        if len(flat) != 1:
            raise multi_input_error(label, [(s.name, tuple(s.shape)) for s in flat])
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        # Freezing inlines the StatefulPartitionedCall of the signature, so the layers' ops
        # become ordinary nodes that a pruned function can fetch.
        frozen = convert_variables_to_constants_v2(function)
        graph_def = frozen.graph.as_graph_def()
        self._wrapped = tf.compat.v1.wrap_function(
            lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
        graph = self._wrapped.graph
        self._input = graph.get_tensor_by_name(frozen.inputs[0].name)
        self._declared = tuple(self._input.shape[1:])
        self.entries = {e.name: e for e in _scan(graph)}
        if not self.entries:
            raise NeurocorrError(f"{label}: found no layer scopes in signature {signature!r}; "
                                 "neurocorr reads layers from Keras-style name scopes. Load the "
                                 "original Keras model instead (.keras file or object)")
        self._fallback = _first_format(graph)
        self._pruned: dict[tuple[tuple[str, ...], bool], Any] = {}

    def declared(self) -> tuple[int | None, ...] | None:
        return self._declared

    def fallback_format(self) -> str:
        return self._fallback

    def layer_format(self, name: str) -> str | None:
        return self.entries[name].data_format

    def op(self, name: str) -> str:
        return self.entries[name].op

    def kind(self, name: str) -> str:
        return self.entries[name].kind

    def prepare(self, shape: tuple[int, ...]) -> None:
        pass

    def run(self, x: np.ndarray, names: Sequence[str] | None, is_last: IsLast,
            means: bool = False) -> dict[str, np.ndarray]:
        """Outputs of ``names`` (all layers when None), channels-first, or with ``means``
        their per-channel spatial means."""
        import tensorflow as tf

        names = tuple(self.entries) if names is None else tuple(names)
        unknown = [n for n in names if n not in self.entries]
        if unknown:
            raise NeurocorrError(f"{self.label} has no layer {unknown[0]!r}; layers: "
                                 f"{', '.join(self.entries)}")
        pruned = self._pruned.get((names, means))
        if pruned is None:
            pruned = self._pruned[names, means] = self._prune(names, is_last, means)
        outs = pruned(tf.constant(self._cast(x), dtype=self._input.dtype))
        return {n: o.numpy() for n, o in zip(names, outs, strict=True)}

    def _cast(self, x: np.ndarray) -> np.ndarray:
        """The probe in the signature's dtype; integer inputs (token ids, uint8 pixels) only
        from integral values, since a cast would silently truncate 0.5 to 0."""
        dtype = self._input.dtype
        if dtype.is_floating or not np.issubdtype(x.dtype, np.floating):
            return x
        if not np.array_equal(x, np.round(x)):
            raise NeurocorrError(f"{self.label} takes {dtype.name} inputs, but the probe holds "
                                 "fractional values; give a probe of integral values (e.g. pixels "
                                 "0..255), or export the model with a float input")
        return x.astype(dtype.as_numpy_dtype)

    def _prune(self, names: tuple[str, ...], is_last: IsLast, means: bool) -> Any:
        """A function from the input to the chosen tensors, channels moved first in the graph
        (or, with ``means``, averaged over their spatial axes there)."""
        import tensorflow as tf

        graph = self._wrapped.graph
        fetches = []
        with graph.as_default():
            for name in names:
                tensor = graph.get_tensor_by_name(self.entries[name].tensor)
                rank = tensor.shape.rank or 0
                if means and rank >= 3:
                    tensor = tf.reduce_mean(tensor, axis=spatial_axes(rank, LAST if is_last(name) else FIRST))
                elif is_last(name) and rank >= 3:
                    tensor = tf.transpose(tensor, [0, rank - 1, *range(1, rank - 1)])
                fetches.append(tensor)
        return self._wrapped.prune(self._input, fetches)


def _load(path: str | os.PathLike[str]) -> Any:
    import tensorflow as tf

    try:
        return tf.saved_model.load(os.fspath(path))
    except Exception as exc:  # TF raises many types for a broken directory
        raise NeurocorrError(f"{os.fspath(path)} is not a readable TensorFlow SavedModel "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                             "write one with model.export(DIR) or tf.saved_model.save") from None


def _signature(loaded: Any, signature: str, label: str) -> Any:
    signatures = getattr(loaded, "signatures", {}) or {}
    if signature not in signatures:
        have = ", ".join(signatures) or "none"
        raise NeurocorrError(f"{label} has no signature {signature!r} (signatures: {have}); choose "
                             "one with the provider option signature=NAME, or export the model "
                             "with model.export(DIR), which writes 'serving_default'")
    return signatures[signature]


def _scope(op_name: str) -> list[str]:
    return op_name.split("/")[:-1]


def _scan(graph: Any) -> list[_Entry]:
    """Layer scopes in topological order, each with its one outgoing float tensor."""
    ops = [op for op in graph.get_operations() if op.type not in _BOOKKEEPING
           and not op.name.startswith("Func/")]
    scopes = [_scope(op.name) for op in ops if _scope(op.name)]
    if not scopes:
        return []
    prefix = _common(scopes)
    if all(s == prefix for s in scopes):  # a one-layer model: the common scope is the layer
        prefix = prefix[:-1]
    depth = len(prefix)
    order = {op.name: i for i, op in enumerate(graph.get_operations())}
    members: dict[str, list[Any]] = {}
    for op in graph.get_operations():  # creation order of an imported graph is topological
        scope = _scope(op.name)
        if len(scope) > depth and scope[:depth] == prefix and not op.name.startswith("Func/"):
            members.setdefault(scope[depth], []).append(op)
    entries = []
    for name, group in members.items():
        inside = {op.name for op in group}
        leaving = [t for op in group for t in op.outputs
                   if t.dtype.is_floating and t.shape.rank and t.shape.rank >= 1
                   and any(c.name not in inside for c in t.consumers())]
        if len({t.name for t in leaving}) != 1:
            continue  # no single output (several tensors leave, or none): not a capturable layer
        out = leaving[0]
        op, kind = _main_op(group, out.op)
        entries.append((order[out.op.name], _Entry(name, out.name, op, kind, _format(group))))
    return [e for _, e in sorted(entries, key=lambda pair: pair[0])]


def _common(scopes: list[list[str]]) -> list[str]:
    first = scopes[0]
    n = len(first)
    for scope in scopes[1:]:
        n = min(n, len(scope))
        while n and scope[:n] != first[:n]:
            n -= 1
    return first[:n]


def _main_op(group: list[Any], output_op: Any) -> tuple[str, str]:
    """The op type and kind that say what a scope is (Conv2D beats its BiasAdd and Relu)."""
    kinds: dict[str, str] = {}
    for op in group:
        kinds.setdefault(_TF_KINDS.get(op.type) or kind_of(op.type), op.type)
    for kind in _PRIORITY:
        if kind in kinds:
            return str(kinds[kind]), kind
    return str(output_op.type), "other"


def _format(group: list[Any]) -> str | None:
    for op in group:
        try:
            fmt = op.get_attr("data_format")
        except ValueError:
            continue
        return FIRST if fmt in (b"NCHW", b"NCW", b"NCDHW") else LAST
    return None


def _first_format(graph: Any) -> str:
    return _format(list(graph.get_operations())) or LAST
