"""One flat symbolic graph for a functional or Sequential Keras model, nested models included.

A nested model (``keras.Sequential([...], name="block")(x)``) is one node of the outer graph:
its layers' own symbolic outputs belong to the nested model's graph, which starts at the nested
model's own Input, so no ``keras.Model`` from the outer input can reach them. Replaying the outer
graph on fresh symbolic inputs, calling every layer again and replaying a nested functional or
Sequential model layer by layer in place of its call, gives one graph from the outer input to
every layer output, inner ones included (``block/conv``), from which one sub-model is cut.

Calling a layer on symbolic tensors appends a node to the layer (and to its inputs' producers);
:class:`Scratch` cuts those nodes off again once the sub-model is built, so the user's model
is left as it was (``layer.output`` still works).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from neurocorr_core import NeurocorrError
from neurocorr_core.interfaces import call_name, kind_of

from .layout import data_format

Touch = Callable[[Any], None]


@dataclass(frozen=True)
class FlatLayer:
    """A layer output in the flat graph: ``layer`` is the Keras layer (or nested model) that
    produced it, ``fmt`` the data format of the output (a nested model's is its last layer's)."""

    tensor: Any
    layer: Any
    fmt: str | None


class Scratch:
    """The replayed nodes of a flat graph, on loan from the user's layers: ``touch(op)`` before
    ``op`` is called symbolically, and on leaving the ``with`` block the nodes appended since to
    each touched op are removed (Keras only ever appends to these lists)."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Any, int, int]] = {}

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        for op, inbound, outbound in self._seen.values():
            del op._inbound_nodes[inbound:]
            del op._outbound_nodes[outbound:]

    def touch(self, op: Any) -> None:
        self._seen.setdefault(id(op), (op, len(op._inbound_nodes), len(op._outbound_nodes)))

    def model(self, inputs: Any, outputs: list[Any]) -> Any:
        """``keras.Model(inputs, outputs)`` over the replayed graph. Keras refuses two operations
        of one name in a model (its saved graph refers to them by name), and layers of different
        nested models may share one (``block1/conv``, ``block2/conv``); this model is only run,
        so the touched ops carry unique names while it is built ('/' is refused in Keras names,
        so ``conv/3`` is no other op's name)."""
        import keras

        ops = [op for op, _, _ in self._seen.values()]
        names = [op.name for op in ops]
        try:
            for i, op in enumerate(ops):
                op.name = f"{op.name}/{i}"
            return keras.Model(inputs, outputs)
        finally:
            for op, name in zip(ops, names, strict=True):
                op.name = name


def flatten(model: Any, touch: Touch) -> tuple[list[Any], dict[str, FlatLayer]]:
    """Fresh symbolic inputs and every layer output reachable from them, named by nested path
    (``block/conv``; the k-th call of a shared layer or nested model, k >= 1, is ``name#k``, and
    the layers inside the k-th call of a nested model are ``block/conv#k``, as in torch),
    in the order the outputs are computed."""
    import keras

    _check_keras()
    graph = model._functional if isinstance(model, keras.Sequential) else model
    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype) for t in graph.inputs]
    replay = _Replay(touch)
    replay.graph(graph, keras.tree.pack_sequence_as(graph._inputs_struct, inputs), "")
    return inputs, replay.found


#: The Keras methods the replay walks with (Keras 3.0 to 3.15 have them).
INTERNALS = ("_run_through_graph", "_standardize_inputs")


def _check_keras() -> None:
    """A clear error, instead of an AttributeError deep in the replay, on a Keras that moved them."""
    import keras
    from keras.src.models.functional import Functional

    missing = [f"Functional.{name}" for name in INTERNALS if not hasattr(Functional, name)]
    if missing:
        raise NeurocorrError(
            f"Keras {keras.__version__} has no {', '.join(missing)}, which neurocorr-tensorflow uses to list "
            "the layers of functional and Sequential models (nested ones included); it is tested with Keras "
            "3.15: install a Keras 3 release that has them (pip install 'keras<=3.15'), or pass the model as "
            "a SavedModel directory (model.export(path)), which does not need them")


class _Replay:
    def __init__(self, touch: Touch) -> None:
        self.touch = touch
        self.found: dict[str, FlatLayer] = {}
        self._calls: dict[str, int] = {}
        self._formats: dict[int, str | None] = {}  # id(tensor) -> data format of its producer

    def graph(self, graph: Any, inputs: Any, prefix: str) -> Any:
        """``graph``'s outputs computed from ``inputs`` by Keras' own walk of its nodes (the order
        of ``Functional.call``), with every node's operation called through :meth:`call`."""
        flat_inputs = graph._standardize_inputs(inputs)
        outputs = graph._run_through_graph(
            flat_inputs, operation_fn=lambda op: lambda *args, **kwargs: self.call(op, prefix, args, kwargs))
        return outputs[0] if isinstance(outputs, (list, tuple)) and len(outputs) == 1 else outputs

    def call(self, op: Any, prefix: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        import keras

        function = function_name(op)
        if isinstance(op, keras.layers.Layer):
            name: str | None = self._name(op.name, prefix)
        else:  # keras.ops.relu(x) in a functional graph: an activation function named after its place
            name = self._name(function + "()", prefix) if kind_of(function) == "activation" else None
        inner = _graph_of(op)
        if inner is not None and name is not None:
            # a nested model's own kwargs (training, mask) are left out: the sub-model's call
            # passes training=False to every layer of the flat graph
            # inner layers count their own calls, as torch's submodules do: block/conv#1, not block#1/conv
            out = self.graph(inner, args[0] if args else kwargs["inputs"], prefix + op.name + "/")
            fmt = self._formats.get(id(out))
        else:
            self.touch(op)
            out = op(*args, **kwargs)
            # an elementwise function keeps its input's layout
            layer = isinstance(op, keras.layers.Layer)
            fmt = data_format(op) if layer or not args else self._formats.get(id(args[0]))
        if name is not None and isinstance(out, keras.KerasTensor) and len(out.shape) >= 1:
            self._formats[id(out)] = fmt
            self.found[name] = FlatLayer(out, op, fmt)
        return out

    def _name(self, base: str, prefix: str) -> str:
        path = prefix + base
        calls = self._calls[path] = self._calls.get(path, -1) + 1
        return call_name(path, calls)


def function_name(op: Any) -> str:
    """The function a non-layer operation of a graph stands for: ``keras.ops.relu`` -> ``relu``
    (its class ``Relu``), ``keras.ops.leaky_relu`` -> ``leaky_relu``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", type(op).__name__).lower()


def _graph_of(op: Any) -> Any | None:
    """The functional graph that a nested model's call runs, or None for any other layer (a
    subclassed model, or a model that overrides ``call``, stays one layer)."""
    import keras
    from keras.src.models.functional import Functional

    if isinstance(op, keras.Sequential) and type(op).call is keras.Sequential.call:
        return op._functional  # None when it was never built on a single input
    if isinstance(op, Functional) and type(op).call is Functional.call:
        return op
    return None
