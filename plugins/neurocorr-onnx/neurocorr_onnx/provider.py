"""The ONNX activation provider: node outputs exposed as extra graph outputs of one onnxruntime session."""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurocorr_core import ActivationProvider, LayerInfo, NeurocorrError
from neurocorr_core.interfaces import kind_of

from . import graph as g

LAYOUTS = ("auto", "nchw", "nhwc")


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX file together with provider options.

    Return one from a ``module:callable`` reference to pass options from the command line,
    e.g. ``def model(): return OnnxModel("two_inputs.onnx", input_name="image")``.
    """

    path: str | os.PathLike[str]
    layout: str = "auto"
    input_name: str | None = None
    fixed_inputs: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class _Layer:
    tensor: str
    info: LayerInfo
    channel_axis: int | None  # where the channels are in the raw output, if not at axis 1
    dtype: np.dtype[Any]  # of the raw output

    @property
    def spatial_axes(self) -> tuple[int, ...]:
        """The raw output's axes other than the batch and the channels (none for (N, F))."""
        rank, channels = len(self.info.shape) + 1, self.channel_axis or 1
        return tuple(a for a in range(1, rank) if a != channels) if rank > 2 else ()

    @property
    def mean_tensor(self) -> str:
        """The name of the per-channel mean's output in a channel-means session."""
        return f"{self.tensor}/neurocorr_channel_mean" if self.spatial_axes else self.tensor


class OnnxProvider(ActivationProvider):
    """Every node output of the graph that carries per-sample floating-point values is a
    layer, named after its tensor (exporters' ``_output_0``/``:0`` suffixes dropped), in
    topological order. The selected ones become extra graph outputs, so one
    ``session.run`` per probe batch yields all of them; a session is built once per set of
    layers. For the ``channel`` view (``channel_means``) each selected output with spatial
    axes feeds an added ReduceMean node instead, so the session returns only (N, C) means.

    Options: ``layout`` (``auto``, ``nchw``, ``nhwc``: how the NCHW probe is fed to a 4-D
    input; ``auto`` reads the input's declared shape, then looks for an NHWC->NCHW
    Transpose behind it); ``input_name`` (which input receives the probe when the model has
    several) and ``fixed_inputs`` (``{name: per-sample array}`` fed, repeated over the
    batch, to the other inputs); ``execution_providers`` (default CPU) and ``threads``.
    """

    name = "onnx"
    channel_means = True
    handles = ".onnx files, onnx.ModelProto objects and neurocorr_onnx.OnnxModel (file + options)"

    @classmethod
    def accepts(cls, model: object) -> bool:
        if isinstance(model, (str, os.PathLike)):
            return Path(model).suffix.lower() == ".onnx"
        if isinstance(model, OnnxModel):
            return True
        return "onnx" in sys.modules and isinstance(model, sys.modules["onnx"].ModelProto)

    def __init__(self, model: object, *, layout: str | None = None, input_name: str | None = None,
                 fixed_inputs: Mapping[str, np.ndarray] | None = None,
                 execution_providers: Sequence[str] | None = None, threads: int | None = None,
                 **options: Any) -> None:
        super().__init__(model, **options)
        spec = model if isinstance(model, OnnxModel) else None
        source = spec.path if spec else model
        self.layout = layout or (spec.layout if spec else "auto")
        if self.layout not in LAYOUTS:
            raise NeurocorrError(f"unknown layout {self.layout!r}; choose one of {', '.join(LAYOUTS)} "
                                 "(auto: follow the model's input; nhwc: feed the NCHW probe channels-last)")
        self.proto, self.folder, self.label = _open(source)
        self.external = (g.check_external_data(self.proto, self.folder, self.label)
                         if self.folder is not None else _no_external(self.proto, self.label))
        self.execution_providers = list(execution_providers or ["CPUExecutionProvider"])
        self.threads = threads
        self.order = g.nodes_in_order(self.proto.graph)
        self.input, fixed = _choose_input(self.proto.graph, self.label,
                                          input_name or (spec.input_name if spec else None),
                                          {**(spec.fixed_inputs if spec else {}), **(fixed_inputs or {})})
        self.fixed = {k: np.asarray(v) for k, v in fixed.items()}
        self.dims = _dims(self.input)
        self.dtype = _np_dtype(self.input.type.tensor_type.elem_type)
        dependent = g.dependent_outputs(self.order, self.input.name)
        self.candidates = [t for t, _ in dependent]
        self._ops = {t: node.op for t, node in dependent}
        self._activations = g.activation_outputs(self.proto.graph)
        self._sessions: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}
        self._layers: dict[str, _Layer] | None = None
        self._auto: str | None = None
        self._session(self.candidates)  # loads the model now, so a broken file fails here

    # -- the ActivationProvider contract ---------------------------------------------------
    def layers(self, sample: np.ndarray) -> list[LayerInfo]:
        """Found by running ``sample`` (and, for a dynamic batch size, ``sample`` plus one row,
        so only tensors whose first axis is the batch are kept)."""
        sample = np.asarray(sample)
        session = self._session(self.candidates)
        outs = self._run(session, sample, self.candidates)
        runs = [(outs, len(sample))]
        if not (self.dims and isinstance(self.dims[0], int)):
            bigger = np.concatenate([sample, sample[:1]])
            runs.append((self._run(session, bigger, self.candidates), len(bigger)))
        kept = [t for t in self.candidates if _per_sample(t, runs)]
        ranks = {t: outs[t].ndim for t in kept}
        ranks[self.input.name] = len(self.dims)
        labels = g.layouts(self.order, self.input.name, self._input_label(sample.shape[1:]), ranks)
        names = g.short_names(kept)
        self._layers = {}
        for depth, tensor in enumerate(kept):
            axis = g.channel_axis(labels.get(tensor))
            shape = tuple(int(s) for s in _to_channels_first(outs[tensor], axis).shape[1:])
            op = self._ops[tensor]
            kind = "activation" if tensor in self._activations else kind_of(op)
            info = LayerInfo(names[tensor], shape, depth, kind, op)
            self._layers[info.name] = _Layer(tensor, info, axis, outs[tensor].dtype)
        # Each session holds its own copy of the weights: drop the one that exposes every tensor.
        self._sessions.pop((tuple(sorted(set(self.candidates))), ()), None)
        return [layer.info for layer in self._layers.values()]

    def activations(self, batches: Iterable[np.ndarray], layers: Sequence[str], *,
                    channel_means: bool = False) -> Iterator[dict[str, np.ndarray]]:
        iterator = iter(batches)
        first = next(iterator, None)
        if first is None:
            return
        if self._layers is None:
            self.layers(first[:2])
        chosen = [self._layer(name) for name in layers]
        tensors = sorted({layer.tensor for layer in chosen})
        if not tensors:  # onnxruntime reads an empty output list as "all outputs"
            yield from ({} for _ in _chain(first, iterator))
            return
        if channel_means:
            yield from self._means(chosen, _chain(first, iterator))
            return
        session = self._session(tensors)
        for batch in _chain(first, iterator):
            outs = self._run(session, batch, tensors)
            yield {layer.info.name: _to_channels_first(outs[layer.tensor], layer.channel_axis)
                   for layer in chosen}

    def _means(self, chosen: list[_Layer], batches: Iterable[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        """Per-channel means computed by onnxruntime; non-spatial outputs as they are."""
        reduced = [layer for layer in chosen if layer.spatial_axes]
        outputs = sorted({layer.mean_tensor for layer in chosen})
        session = self._session(outputs, tuple(sorted({layer.tensor for layer in reduced})))
        for batch in batches:
            outs = self._run(session, batch, outputs)
            yield {layer.info.name: outs[layer.mean_tensor].astype(np.float32, copy=False) if layer.spatial_axes
                   else _to_channels_first(outs[layer.tensor], layer.channel_axis) for layer in chosen}

    def close(self) -> None:
        self._sessions.clear()

    # -- running -----------------------------------------------------------------------------
    def _layer(self, name: str) -> _Layer:
        assert self._layers is not None
        if name not in self._layers:
            close = difflib.get_close_matches(name, list(self._layers), n=5, cutoff=0.3)
            raise NeurocorrError(f"{self.label} has no layer {name!r}; closest: {', '.join(close) or 'none'}. "
                                 "List the layers with 'neurocorr layers MODEL'")
        return self._layers[name]

    def _session(self, tensors: Sequence[str], reduced: tuple[str, ...] = ()) -> Any:
        """An onnxruntime session whose outputs include ``tensors`` and, for each of the
        ``reduced`` tensors, its channel means (cached per output set and reduced set)."""
        key = (tuple(sorted(set(tensors))), reduced)
        if key not in self._sessions:
            assert self._layers is not None or not reduced
            means = [layer for layer in (self._layers or {}).values() if layer.tensor in reduced]
            self._sessions[key] = _make_session(self, key[0], means)
        return self._sessions[key]

    def _run(self, session: Any, batch: np.ndarray, tensors: Sequence[str]) -> dict[str, np.ndarray]:
        x = self._feed(batch)
        fixed = self.dims[0] if self.dims and isinstance(self.dims[0], int) else None
        if fixed is None or len(x) == fixed:
            return self._run_once(session, x, tensors)
        parts = [self._run_once(session, chunk, tensors) for chunk in _chunks(x, fixed)]
        return {t: _join([p[t] for p in parts], len(x)) for t in tensors}

    def _run_once(self, session: Any, x: np.ndarray, tensors: Sequence[str]) -> dict[str, np.ndarray]:
        feeds = {self.input.name: x}
        for name, value in self.fixed.items():
            feeds[name] = np.ascontiguousarray(np.broadcast_to(value, (len(x), *value.shape)))
        try:
            outs = session.run(list(tensors), feeds)
        except Exception as exc:  # onnxruntime's errors have no common public base class
            raise NeurocorrError(
                f"{self.label} rejected a probe batch fed as shape {tuple(x.shape)}: "
                f"{str(exc).splitlines()[0].rstrip('.')}. The model's input "
                f"{self.input.name!r} expects {_describe_dims(self.dims)}; check the probe's "
                "shape, or the layout option (auto, nchw, nhwc)") from None
        return dict(zip(tensors, outs, strict=True))

    def _feed(self, batch: np.ndarray) -> np.ndarray:
        x = np.asarray(batch)
        if self._input_label(x.shape[1:]) == "NHWC" and x.ndim == 4:
            x = x.transpose(0, 2, 3, 1)
        if np.issubdtype(self.dtype, np.integer) and not np.array_equal(x, np.round(x)):
            raise NeurocorrError(f"input {self.input.name!r} of {self.label} takes integers "
                                 f"({self.dtype}); the probe holds fractional values")
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _input_label(self, sample_shape: tuple[int, ...]) -> str | None:
        """``NHWC``/``NCHW`` for a 4-D input, decided once from the probe's per-sample shape."""
        if len(self.dims) != 4:
            if self.layout == "nhwc":
                raise NeurocorrError(f"layout='nhwc' needs a 4-D image input; input {self.input.name!r} "
                                     f"of {self.label} is {_describe_dims(self.dims)}")
            return None
        if self.layout != "auto":
            return self.layout.upper()
        if len(sample_shape) != 3:  # not an image probe: fed as it is
            return None
        if self._auto is None:
            self._auto = _auto_layout(self.dims, tuple(sample_shape), self._first_consumer_perm())
        return self._auto.upper()

    def _first_consumer_perm(self) -> tuple[int, ...] | None:
        for node in self.order:
            if self.input.name in node.inputs:
                return node.perm if node.op == "Transpose" else None
        return None


# -- loading ---------------------------------------------------------------------------------
def _open(source: object) -> tuple[Any, Path | None, str]:
    """The model proto (external data not loaded), its folder (None for an in-memory proto)
    and a label for messages."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise NeurocorrError(f"ONNX model {os.fspath(path)!r} does not exist")
        return g.load(path), path.parent, os.fspath(path)
    return source, None, "ONNX model (in memory)"


def _no_external(proto: Any, label: str) -> bool:
    if any(True for _ in g.external_tensors(proto)):
        raise NeurocorrError(f"{label} keeps tensors in external data files, which an in-memory "
                             "model cannot locate; pass the path of the .onnx file instead")
    return False


def _make_session(provider: OnnxProvider, tensors: tuple[str, ...], means: Sequence[_Layer] = ()) -> Any:
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: failures are reported as NeurocorrError instead
    if provider.threads:
        options.intra_op_num_threads = provider.threads
    if provider.external and provider.folder is not None:
        # Read external data from the model's folder (already checked), without loading it here.
        options.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                         os.fspath(provider.folder.resolve()))
    graph = provider.proto.graph
    outputs, nodes = graph.output, graph.node
    present = {o.name for o in outputs}
    before, nodes_before = len(outputs), len(nodes)
    try:  # appended to the shared proto only while it is serialised, so the weights are not copied
        nodes.extend(node for layer in means for node in _mean_nodes(layer, _opset(provider.proto)))
        outputs.extend(onnx.ValueInfoProto(name=t) for t in tensors if t not in present)
        data = provider.proto.SerializeToString()
    finally:
        del outputs[before:]
        del nodes[nodes_before:]
    try:
        return ort.InferenceSession(data, options, providers=provider.execution_providers)
    except Exception as exc:
        raise NeurocorrError(_load_failure(provider, exc)) from None


def _mean_nodes(layer: _Layer, opset: int) -> list[Any]:
    """Nodes computing ``layer.mean_tensor``: the float32 mean of its raw output over the spatial
    axes of its own layout (an NHWC output is reduced over axes 1, 2), leaving (N, C).

    NCHW maps go through GlobalAveragePool, which onnxruntime runs in its blocked (NCHWc)
    layout like the convolutions around it: the channel view then costs what the bare model
    costs (ReduceMean made it reorder every map back to NCHW: +34% on EfficientNet-Lite0).
    Other layouts get one ReduceMean per axis, the last first (onnxruntime sums a whole
    112 x 112 map in float32 with errors up to 2e-5; a mean of row means stays near 1e-7)."""
    from onnx import TensorProto, helper

    source, nodes = layer.tensor, []
    if layer.dtype.itemsize < 4:  # float16 sums would lose precision (float64 ones are cast afterwards)
        source = f"{layer.tensor}/neurocorr_float32"
        nodes.append(helper.make_node("Cast", [layer.tensor], [source], to=TensorProto.FLOAT))
    if layer.spatial_axes == (2, 3) and layer.dtype.itemsize <= 4:  # NCHW float32 (or cast): pooled
        pooled = f"{layer.tensor}/neurocorr_pooled"
        return [*nodes, helper.make_node("GlobalAveragePool", [source], [pooled]),
                helper.make_node("Flatten", [pooled], [layer.mean_tensor], axis=1)]
    axes = sorted(layer.spatial_axes, reverse=True)
    for i, axis in enumerate(axes):
        target = layer.mean_tensor if i == len(axes) - 1 else f"{layer.tensor}/neurocorr_mean_{axis}"
        if opset < 18:  # ReduceMean took its axes as an attribute before opset 18
            nodes.append(helper.make_node("ReduceMean", [source], [target], axes=[axis], keepdims=0))
        else:
            axes_name = f"{layer.tensor}/neurocorr_mean_axis_{axis}"
            nodes += [helper.make_node("Constant", [], [axes_name], value_ints=[axis]),
                      helper.make_node("ReduceMean", [source, axes_name], [target], keepdims=0)]
        source = target
    return nodes


def _opset(proto: Any) -> int:
    """The model's version of the default (ai.onnx) operator set."""
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)


def _load_failure(provider: OnnxProvider, exc: Exception) -> str:
    import onnx

    why = str(exc).splitlines()[0].rstrip(".") if str(exc) else type(exc).__name__
    try:
        onnx.checker.check_model(provider.proto)
        checked = ""
    except Exception as bad:  # the checker says what is structurally wrong, if anything
        checked = f" The ONNX checker reports: {str(bad).splitlines()[0].rstrip('.')}."
    return (f"onnxruntime cannot load {provider.label}: {why}.{checked} The file may be truncated or "
            "corrupt, or need a newer onnxruntime (pip install -U onnxruntime); export it again "
            "if it was cut off")


# -- inputs and layouts ----------------------------------------------------------------------
def _choose_input(graph: Any, label: str, wanted: str | None,
                  fixed: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The graph input that receives the probe; every other input needs a fixed value."""
    initialised = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialised]
    listing = "; ".join(f"{i.name}: {_describe_input(i)}" for i in inputs)
    how = ("neurocorr feeds the probe to one input: choose it with input_name='NAME' and give every "
           "other input a fixed per-sample value with fixed_inputs={'NAME': array}, repeated over "
           "the batch (Python: compare(..., options_a={...}); CLI: a module:callable that returns "
           "neurocorr_onnx.OnnxModel(path, input_name=..., fixed_inputs=...))")
    if not inputs:
        raise NeurocorrError(f"{label} has no input to feed the probe to")
    names = [i.name for i in inputs]
    unknown = sorted(set(fixed) - set(names))
    if unknown:
        raise NeurocorrError(f"fixed_inputs names {unknown}, not inputs of {label}; its inputs: {listing}")
    if wanted is None:
        free = [i for i in inputs if i.name not in fixed]
        if len(free) != 1:
            raise NeurocorrError(f"{label} has {len(inputs)} inputs ({listing}); {how}")
        return free[0], dict(fixed)
    if wanted not in names:
        raise NeurocorrError(f"input_name {wanted!r} is not an input of {label}; its inputs: {listing}")
    missing = [n for n in names if n != wanted and n not in fixed]
    if missing:
        raise NeurocorrError(f"{label} has {len(inputs)} inputs ({listing}); the inputs {missing} have no "
                             f"value; {how}")
    return inputs[names.index(wanted)], {k: v for k, v in fixed.items() if k != wanted}


def _dims(value_info: Any) -> list[int | str]:
    """Declared dimensions: an int when fixed, the symbol (or '?') when not."""
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
            for d in shape.dim]


def _describe_dims(dims: Sequence[int | str]) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")" if dims else "a tensor of unknown shape"


def _describe_input(value_info: Any) -> str:
    import onnx

    elem = value_info.type.tensor_type.elem_type
    dtype = onnx.TensorProto.DataType.Name(elem).lower() if elem else "?"
    return f"{dtype}{_describe_dims(_dims(value_info))}"


def _np_dtype(elem_type: int) -> np.dtype[Any]:
    import onnx

    if not elem_type:
        return np.dtype(np.float32)
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


def _auto_layout(dims: Sequence[int | str], sample: tuple[int, ...], perm: tuple[int, ...] | None) -> str:
    """``nchw`` or ``nhwc`` for a 4-D input: the declared per-sample shape decides when it
    fits only one of the probe's (C, H, W) and (H, W, C); else an NHWC->NCHW Transpose
    right behind the input (tf2onnx, jax2onnx) says ``nhwc``; else ``nchw``."""
    declared = dims[1:]
    as_is = _fits(sample, declared)
    moved = len(sample) == 3 and _fits((sample[1], sample[2], sample[0]), declared)
    if as_is != moved:
        return "nhwc" if moved else "nchw"
    if not as_is:
        raise NeurocorrError(
            f"the probe's samples have shape {sample} (NCHW) but the model's input is "
            f"(N, {', '.join(str(d) for d in declared)}), in neither NCHW nor NHWC order; "
            "resize or reshape the probe")
    return "nhwc" if perm == (0, 3, 1, 2) else "nchw"


def _fits(shape: tuple[int, ...], declared: Sequence[int | str]) -> bool:
    return len(shape) == len(declared) and all(not isinstance(d, int) or d == s
                                               for s, d in zip(shape, declared, strict=True))


# -- outputs ---------------------------------------------------------------------------------
def _per_sample(tensor: str, runs: list[tuple[dict[str, np.ndarray], int]]) -> bool:
    """A layer is a floating-point tensor whose first axis is the batch in every run."""
    shapes = []
    for outs, n in runs:
        out = outs.get(tensor)
        if not isinstance(out, np.ndarray) or not np.issubdtype(out.dtype, np.floating):
            return False
        if out.ndim < 1 or out.shape[0] != n or 0 in out.shape:
            return False
        shapes.append(out.shape[1:])
    return all(s == shapes[0] for s in shapes)


def _to_channels_first(out: np.ndarray, axis: int | None) -> np.ndarray:
    if axis is not None:
        out = np.moveaxis(out, axis, 1)
    return out.astype(np.float32, copy=False)


def _join(parts: list[Any], n: int) -> Any:
    """Outputs of consecutive fixed-size chunks joined along the batch axis; a tensor
    without a batch axis (a shape, a constant) is taken from the first chunk."""
    size = len(parts[0]) if isinstance(parts[0], np.ndarray) and parts[0].ndim else 0
    if size and all(isinstance(p, np.ndarray) and p.ndim and len(p) == size for p in parts):
        return np.concatenate(parts)[:n]
    return parts[0]


def _chunks(x: np.ndarray, size: int) -> list[np.ndarray]:
    """``x`` cut into batches of the model's fixed batch size, the last padded with copies of
    its last sample (their outputs are dropped)."""
    chunks = [x[i:i + size] for i in range(0, len(x), size)]
    short = size - len(chunks[-1])
    if short:
        chunks[-1] = np.concatenate([chunks[-1], np.repeat(chunks[-1][-1:], short, axis=0)])
    return chunks


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest
