"""Capturing layer outputs of in-memory Keras 3 models.

Functional and Sequential models: one sub-model from the model's input to the chosen layers'
outputs (inside nested models too, see :mod:`.flat`), built once per set of layers and run as
one compiled forward pass per batch. Subclassed models have no symbolic graph to cut, so their sublayers' ``call``
is wrapped for the duration of one eager forward pass and the output of each call is recorded
(``act``, ``act#1``, ... for a sublayer called several times).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np

from neurocorr_core import NeurocorrError
from neurocorr_core.interfaces import call_name, kind_of

from .flat import FlatLayer, Scratch, flatten, function_name
from .functional import intercepted, is_keras_layer
from .layout import FIRST, LAST, data_format, spatial_axes, to_canonical

Feed = Callable[[np.ndarray], Any]
#: Says whether a layer's output is channels-last (so the provider wants its channels moved first).
IsLast = Callable[[str], bool]


def op_name(layer: Any) -> str:
    """The layer's type name; for ``Activation`` layers the activation's name (``relu``); with a
    fused activation both (``Dense+relu``)."""
    import keras

    if not isinstance(layer, keras.layers.Layer):  # an operation such as keras.ops.relu
        return function_name(layer)
    if isinstance(layer, keras.layers.Activation):
        return str(getattr(layer.activation, "__name__", "Activation"))
    fused = getattr(getattr(layer, "activation", None), "__name__", "linear")
    return type(layer).__name__ + ("" if fused == "linear" else f"+{fused}")


def layer_kind(op: str) -> str:
    """The shared kind of an :func:`op_name`: a layer's output is after its fused activation, so
    ``Dense+relu`` is an activation, as the ReLU after a Linear is in PyTorch or ONNX."""
    base, _, fused = op.partition("+")
    return "activation" if fused and kind_of(fused) == "activation" else kind_of(base)


def first_format(layers: Iterable[Any]) -> str:
    """The data format of the first layer that declares one (conv, pooling), else Keras' default."""
    import keras

    for layer in layers:
        fmt = data_format(layer)
        if fmt is not None and not isinstance(layer, keras.layers.Flatten):
            return fmt
    return str(keras.config.image_data_format())


def to_numpy(value: Any) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(value))


class KerasGraph:
    """A Functional or Sequential model: every layer with one output in its flat graph (layers
    inside nested models too, as ``block/conv``), in the order the outputs are computed."""

    def __init__(self, model: Any, label: str, feed: Feed | None) -> None:
        self.model, self.label, self.feed = model, label, feed
        self._subs: dict[tuple[tuple[str, ...], bool], Any] = {}
        self._flat: dict[str, FlatLayer] | None = None
        inputs = self._inputs()
        if inputs is not None and len(inputs) != 1 and feed is None:
            raise multi_input_error(label, [(getattr(t, "name", "?"), tuple(t.shape)) for t in inputs])

    def _inputs(self) -> list[Any] | None:
        # model.inputs, not model.input: a Sequential model built from data has only the former
        try:
            return list(self.model.inputs)
        except AttributeError:  # a Sequential model without an Input that was never built
            return None

    def declared(self) -> tuple[int | None, ...] | None:
        inputs = self._inputs()
        if inputs is None or self.feed is not None:
            return None
        return tuple(inputs[0].shape[1:])

    def fallback_format(self) -> str:
        return first_format(self.model._flatten_layers(include_self=False, recursive=True))

    def layer_format(self, name: str) -> str | None:
        return self.outputs()[name].fmt

    def op(self, name: str) -> str:
        return op_name(self.outputs()[name].layer)

    def kind(self, name: str) -> str:
        return layer_kind(self.op(name))

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Build a Sequential model that never saw an input, for per-sample ``shape``."""
        if self._inputs() is None:
            self.model.build((None, *shape))
            if self._inputs() is None:
                raise NeurocorrError(f"{self.label}: the Sequential model could not be built for "
                                     f"inputs of shape (N, {', '.join(map(str, shape))}); give it "
                                     "a keras.Input(shape) as its first layer")

    def outputs(self) -> dict[str, FlatLayer]:
        """Every layer output of the flat graph, in forward order (its tensors only describe
        shapes: each sub-model replays the graph afresh)."""
        if self._flat is None:
            with Scratch() as scratch:
                self._flat = flatten(self.model, scratch.touch)[1]
        return self._flat

    def run(self, x: np.ndarray, names: Sequence[str] | None, is_last: IsLast,
            means: bool = False) -> dict[str, np.ndarray]:
        """Outputs of ``names`` (all layers when None), channels-first, or with ``means``
        their per-channel spatial means."""
        names = tuple(self.outputs()) if names is None else tuple(names)
        unknown = [n for n in names if n not in self.outputs()]
        if unknown:
            raise NeurocorrError(f"{self.label} has no capturable layer {unknown[0]!r}; "
                                 f"layers: {', '.join(self.outputs())}")
        forward = self._subs.get((names, means))
        if forward is None:
            forward = self._subs[names, means] = _compiled(self._sub_model(names, is_last, means))
        outs = forward(self.feed(x) if self.feed else x)
        return {n: np.asarray(o) for n, o in zip(names, outs, strict=True)}

    def _sub_model(self, names: tuple[str, ...], is_last: IsLast, means: bool) -> Any:
        """One model from the input to every chosen output of the flat graph; channels-last
        outputs are moved channels-first inside it, where the transpose is a fast compiled op
        (a numpy copy per batch costs about a third of the forward pass of a small CNN). With
        ``means`` the outputs with spatial axes are averaged over them instead (no transpose)."""
        import keras

        with Scratch() as scratch:  # the model must be built while the replayed nodes exist
            inputs, flat = flatten(self.model, scratch.touch)
            outputs = []
            for name in names:
                out = flat[name].tensor
                if means and len(out.shape) >= 3:
                    out = keras.ops.mean(out, axis=spatial_axes(len(out.shape), LAST if is_last(name) else FIRST))
                elif is_last(name) and len(out.shape) >= 3:
                    out = keras.ops.moveaxis(out, -1, 1)
                outputs.append(out)
            return scratch.model(inputs[0] if len(inputs) == 1 else inputs, outputs)


def _compiled(sub: Any) -> Callable[[Any], list[np.ndarray]]:
    """The sub-model's forward pass as one compiled call per batch.

    With the TensorFlow backend a ``tf.function`` whose outputs become numpy arrays without a
    copy; predict_on_batch copies every output once more, which for wide conv layers costs
    about a tenth of the forward pass. Other Keras backends use predict_on_batch.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        def predict(x: Any) -> list[np.ndarray]:
            outs = sub.predict_on_batch(x)
            return list(outs) if isinstance(outs, (list, tuple)) else [outs]
        return predict
    import tensorflow as tf

    function = tf.function(lambda x: sub(x, training=False), reduce_retracing=True, autograph=False)

    def run(x: Any) -> list[np.ndarray]:
        outs = function(x)
        return [out.numpy() for out in (outs if isinstance(outs, (list, tuple)) else [outs])]
    return run


class KerasEager:
    """A subclassed model: every call of a sublayer (recursively, named by its path ``block/conv``)
    that returns one tensor is a layer, the k-th call of a shared one (k >= 1) ``path#k`` as in
    the torch provider, in the order the calls finish; so is every activation function called in
    a ``call`` of the model or of a user's layer (``block/relu()``, :mod:`.functional`); one eager
    forward pass per batch."""

    def __init__(self, model: Any, label: str, feed: Feed | None) -> None:
        self.model, self.label, self.feed = model, label, feed
        self.named = dict(_walk(model, "", set()))
        #: base name of a captured function call (``block/relu()``) -> its op (``relu``)
        self.functions: dict[str, str] = {}
        if not self.named:
            raise NeurocorrError(f"{label} is a subclassed Keras model without tracked sublayers, so "
                                 "nothing inside it can be captured. Supported: Sequential and "
                                 "functional models (any layers), and subclassed models whose "
                                 "layers are attributes (self.conv = keras.layers.Conv2D(...))")

    def declared(self) -> tuple[int | None, ...] | None:
        return None

    def fallback_format(self) -> str:
        return first_format(list(self.named.values()))

    def layer_format(self, name: str) -> str | None:
        path = self._path(name)
        return None if path in self.functions else data_format(self.named[path])

    def op(self, name: str) -> str:
        path = self._path(name)
        return self.functions[path] if path in self.functions else op_name(self.named[path])

    def kind(self, name: str) -> str:
        return layer_kind(self.op(name))

    def prepare(self, shape: tuple[int, ...]) -> None:
        pass

    def run(self, x: np.ndarray, names: Sequence[str] | None, is_last: IsLast,
            means: bool = False) -> dict[str, np.ndarray]:
        """Outputs of ``names`` (every call that returned one tensor when None), channels-first,
        or with ``means`` their per-channel spatial means, taken by Keras before the copy out."""
        x = self.feed(x) if self.feed else x
        reduce = _spatial_mean(is_last) if means else None
        wanted = None if names is None else set(names)
        recorded: dict[str, np.ndarray] = {}
        with _recording(self.named, recorded, wanted, reduce, self.functions):
            self.model(x, training=False)
        missing = [n for n in names or () if n not in recorded]
        if missing:
            raise self._no_layer(missing[0], x)
        return {n: to_canonical(v, LAST if is_last(n) else FIRST) for n, v in recorded.items()}

    def _path(self, name: str) -> str:
        """The sublayer path (or function base name) of a layer name: ``act#2`` is the third call of ``act``."""
        if name in self.named or name in self.functions:
            return name
        path, _, call = name.rpartition("#")
        return path if call.isdigit() and (path in self.named or path in self.functions) else name

    def _no_layer(self, name: str, x: Any) -> NeurocorrError:
        """The error for a name no call produced, listing the layers a forward pass of ``x`` gives."""
        found: dict[str, np.ndarray] = {}
        with _recording(self.named, found, None, None, self.functions):
            self.model(x, training=False)
        return NeurocorrError(f"{self.label} has no layer {name!r} on this batch; its layers (one per call "
                              "of a sublayer that returns one tensor: act, act#1, ... for a sublayer act "
                              f"called several times) are: {', '.join(found)}")


def symbolic(value: Any) -> bool:
    import keras

    if isinstance(value, keras.KerasTensor):
        return True
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return bool(tf.is_symbolic_tensor(value))


def _walk(layer: Any, prefix: str, seen: set[int]) -> Iterator[tuple[str, Any]]:
    """Sublayers depth-first, named by the attribute that holds them (``block/conv``, a list
    item ``blocks/0``), else by the layer's own name (layers of a nested Sequential). A layer
    held in several places is named once, by its first path, as torch names a shared module."""
    # Keras 3 keeps tracked sublayers in _flatten_layers; Model.layers is the same, one level.
    children = layer._flatten_layers(include_self=False, recursive=False)
    attrs = _attribute_names(layer)
    for child in children:
        if id(child) in seen:
            continue
        seen.add(id(child))
        path = f"{prefix}{attrs.get(id(child), child.name)}"
        yield path, child
        yield from _walk(child, path + "/", seen)


def _attribute_names(layer: Any) -> dict[int, str]:
    import keras

    names: dict[int, str] = {}
    for attr, value in vars(layer).items():
        if attr.startswith("_"):
            continue
        if isinstance(value, keras.layers.Layer):
            names.setdefault(id(value), attr)
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, keras.layers.Layer):
                    names.setdefault(id(item), f"{attr}/{i}")
    return names


def _spatial_mean(is_last: IsLast) -> Callable[[str, Any], Any]:
    """A layer's output tensor -> its per-channel spatial mean, computed by Keras."""
    import keras

    def reduce(name: str, out: Any) -> Any:
        rank = len(out.shape)
        return keras.ops.mean(out, axis=spatial_axes(rank, LAST if is_last(name) else FIRST)) if rank >= 3 else out
    return reduce


@contextmanager
def _recording(layers: dict[str, Any], recorded: dict[str, np.ndarray], wanted: set[str] | None,
               reduce: Callable[[str, Any], Any] | None = None,
               functions: dict[str, str] | None = None) -> Iterator[None]:
    """Wrap each layer's ``call`` (an instance attribute shadows the class method) so that the
    single-tensor output of its k-th call (through ``reduce`` if given) lands in ``recorded`` as
    ``call_name(path, k)``, in the order calls finish; only names in ``wanted`` unless it is None.
    With ``functions``, activation functions called by the model's or a user layer's ``call``
    are recorded too (``block/relu()``), their base names and ops put into ``functions``."""
    import keras

    stack: list[Any] = []  # the layers whose call runs now, innermost last
    counts: dict[str, int] = {}

    def keep(name: str, out: Any) -> None:
        if wanted is None or name in wanted:
            recorded[name] = to_numpy(reduce(name, out) if reduce else out)

    def place() -> str | None:
        if not stack:
            return ""
        path, layer = stack[-1]
        return None if is_keras_layer(layer) else path

    def function_call(where: str, op: str, out: Any) -> None:
        base = f"{where}/{op}()" if where else f"{op}()"
        calls = counts[base] = counts.get(base, -1) + 1
        assert functions is not None
        functions[base] = op
        if keras.ops.is_tensor(out):
            keep(call_name(base, calls), out)

    def wrap(path: str, call: Callable[..., Any]) -> Callable[..., Any]:
        calls = 0

        @functools.wraps(call)
        def recorder(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            stack.append((path, layers[path]))
            try:
                out = call(*args, **kwargs)
            finally:
                stack.pop()
            # symbolic tensors appear while Keras builds a layer or nested model: no call of the pass
            if any(symbolic(leaf) for leaf in keras.tree.flatten(out)):
                return out
            name = call_name(path, calls)
            calls += 1
            if keras.ops.is_tensor(out):
                keep(name, out)
            return out
        return recorder

    originals = {path: layer.__dict__.get("call") for path, layer in layers.items()}
    capture = intercepted(function_call, place, symbolic) if functions is not None else nullcontext()
    try:
        for path, layer in layers.items():
            layer.call = wrap(path, layer.call)
        with capture:
            yield
    finally:
        for path, layer in layers.items():
            if originals[path] is None:
                del layer.call
            else:
                layer.call = originals[path]


def multi_input_error(label: str, inputs: Sequence[tuple[str, tuple[Any, ...]]]) -> NeurocorrError:
    listed = ", ".join(f"{name} {shape}" for name, shape in inputs)
    return NeurocorrError(
        f"{label} has {len(inputs)} inputs ({listed}); neurocorr feeds one probe array, so it "
        "supports single-input models directly. For a model with several inputs pass the provider "
        "option feed=FUNCTION that turns one probe batch (after the layout change, e.g. (N, H, W, C)) "
        "into the model's inputs, e.g. compare(..., options_a={'feed': lambda x: [x, "
        "np.zeros((len(x), 4), 'float32')]}), or compare a single-input part of the model")
