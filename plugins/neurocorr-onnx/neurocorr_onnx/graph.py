"""Reading an ONNX graph: safe loading, forward order, layer names and tensor layouts.

Nothing here runs a model; :mod:`neurocorr_onnx.provider` does that with onnxruntime.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from neurocorr_core import NeurocorrError

#: ONNX ops whose outputs are channels-first by the ONNX specification.
CHANNELS_FIRST_OPS = frozenset({
    "Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "DeformConv", "MaxPool", "AveragePool",
    "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "BatchNormalization",
    "InstanceNormalization", "LRN", "MaxUnpool", "SpaceToDepth", "DepthToSpace",
})

#: Ops whose output keeps the axis order of an input of the same rank (elementwise and
#: shape-preserving ops), so the output inherits that input's layout.
LAYOUT_PRESERVING_OPS = frozenset({
    "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "LeakyRelu", "PRelu", "Elu",
    "Selu", "Celu", "Gelu", "Mish", "Softplus", "Softsign", "ThresholdedRelu", "Swish",
    "Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Erf", "Floor", "Ceil", "Round", "Sign",
    "Sin", "Cos", "Identity", "Dropout", "Cast", "CastLike",
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "Mod",
    "Pad", "Concat", "Slice", "Resize", "Upsample", "Softmax", "LogSoftmax",
    "LayerNormalization", "QuantizeLinear", "DequantizeLinear",
})

#: ONNX encodes these activations as another op; the kind follows what the op computes.
ACTIVATION_OPS = frozenset({"Clip"})  # torch ReLU6 / Hardtanh and Keras ReLU(max_value) export as Clip


@dataclass(frozen=True)
class Node:
    """One node of the top-level graph, by index in ``graph.node``."""

    index: int
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    perm: tuple[int, ...] | None  # Transpose only


def load(path: Path) -> Any:
    """The ``onnx.ModelProto`` in ``path``, without its external data, or a clear error."""
    import onnx
    from google.protobuf.message import DecodeError

    if path.is_dir():
        raise NeurocorrError(f"{path} is a folder, not an .onnx file; give the path of the .onnx file")
    size = path.stat().st_size
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise NeurocorrError(
            f"{path} is not a readable ONNX model: protobuf cannot parse its {size} bytes ({exc}). "
            "The file is truncated, corrupt or in another format; export it again "
            "(torch.onnx.export, tf2onnx, jax2onnx) or copy it again") from None
    if not model.graph.node or not model.opset_import:
        # An empty file, or one cut off between two fields, parses as a partial model.
        raise NeurocorrError(
            f"{path} is not a complete ONNX model: it has {len(model.graph.node)} graph nodes and "
            f"{len(model.opset_import)} opset imports ({size} bytes; a truncated file or another "
            "format?). Export the model again or copy the whole file")
    return model


def external_tensors(model: Any) -> Iterator[Any]:
    """Every TensorProto of ``model`` whose data lives in an external file."""
    import onnx

    for tensor in _all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            yield tensor


def _all_tensors(model: Any) -> Iterator[Any]:
    graphs = [model.graph, *[f for f in model.functions]]
    while graphs:
        graph = graphs.pop()
        yield from getattr(graph, "initializer", ())
        for sparse in getattr(graph, "sparse_initializer", ()):
            yield sparse.values
            yield sparse.indices
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("g"):
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)


def check_external_data(model: Any, folder: Path, label: str) -> bool:
    """Refuse external-data references that leave ``folder`` (absolute paths, ``..``, links
    out of it). Returns True if the model uses external data at all."""
    root = folder.resolve()
    found = False
    for tensor in external_tensors(model):
        found = True
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        if not _inside(root, location):
            raise NeurocorrError(
                f"{label}: tensor {tensor.name!r} refers to external data {location!r}, which is "
                f"outside the model's folder {root}; neurocorr reads external data only from the "
                "model's own folder. Move the data file next to the model and save it again with a "
                "relative location: onnx.save(model, path, save_as_external_data=True, "
                "location='NAME.data')")
    return found


def _inside(root: Path, location: str) -> bool:
    if not location or "\x00" in location:
        return False
    if PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute() \
            or PureWindowsPath(location).drive or location.startswith(("/", "\\")):
        return False
    if ".." in PureWindowsPath(location).parts:  # splits on both / and \
        return False
    target = (root / location).resolve()  # a symbolic link out of the folder also leaves it
    return target == root or root in target.parents


def nodes_in_order(graph: Any) -> list[Node]:
    """The top-level nodes in topological order: ONNX requires files to be sorted, and a
    stable sort (Kahn's, lowest file index first) makes sure of it."""
    nodes = [Node(i, n.op_type, tuple(n.input), tuple(n.output),
                  _perm(n) if n.op_type == "Transpose" else None) for i, n in enumerate(graph.node)]
    producer = {out: node.index for node in nodes for out in node.outputs if out}
    waiting = [0] * len(nodes)
    users: dict[int, list[int]] = {}
    for node in nodes:
        for src in {producer[t] for t in node.inputs if t in producer and producer[t] != node.index}:
            waiting[node.index] += 1
            users.setdefault(src, []).append(node.index)
    ready = [n.index for n in nodes if waiting[n.index] == 0]
    heapq.heapify(ready)
    order: list[Node] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(nodes[index])
        for user in users.get(index, ()):
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    if len(order) < len(nodes):  # a cycle: keep the file's order for the rest; onnxruntime will say
        placed = {n.index for n in order}
        order += [n for n in nodes if n.index not in placed]
    return order


def _perm(node: Any) -> tuple[int, ...] | None:
    for attr in node.attribute:
        if attr.name == "perm":
            return tuple(attr.ints)
    return None  # default: reverse the axes (resolved once the rank is known)


def dependent_outputs(order: Sequence[Node], source: str) -> list[tuple[str, Node]]:
    """The node outputs that depend on the graph input ``source``, in forward order."""
    reached = {source}
    found: list[tuple[str, Node]] = []
    for node in order:
        if any(t in reached for t in node.inputs):
            for out in node.outputs:
                if out:
                    reached.add(out)
                    found.append((out, node))
    return found


def activation_outputs(graph: Any) -> set[str]:
    """Outputs of nodes that compute an activation under another op's name: ``Clip`` (how
    ReLU6 and Hardtanh are exported) and ``Max(x, 0)`` (how jax2onnx exports ``jax.nn.relu``
    when it is not called by name, e.g. inside ``nnx.Sequential``)."""
    zeros = _zero_constants(graph)
    found: set[str] = set()
    for node in graph.node:
        if node.op_type in ACTIVATION_OPS or (
                node.op_type == "Max" and len(node.input) == 2 and any(t in zeros for t in node.input)):
            found.update(t for t in node.output if t)
    return found


def _zero_constants(graph: Any) -> set[str]:
    """Names of small constant tensors (initializers, Constant nodes) that are all zeros."""
    from onnx import numpy_helper

    tensors = [(t.name, t) for t in graph.initializer if t.data_location != 1]  # 1: EXTERNAL, not read
    for node in graph.node:
        if node.op_type == "Constant":
            tensors += [(node.output[0], a.t) for a in node.attribute if a.name == "value"]
    zeros = set()
    for name, tensor in tensors:
        size = 1
        for d in tensor.dims:
            size *= d
        if size <= 64 and not (numpy_helper.to_array(tensor) != 0).any():
            zeros.add(name)
    return zeros


def short_names(tensors: Sequence[str]) -> dict[str, str]:
    """Readable layer names from tensor names: exporters' suffixes dropped where unambiguous.

    torch legacy ``/act/Relu_output_0`` -> ``/act/Relu``; tf2onnx ``model/re_lu/Relu:0`` ->
    ``model/re_lu/Relu``; torch dynamo ``relu`` and jax2onnx ``relu_out_0`` stay as they are.
    Tensor names are unique in a graph; a shortened name that would collide keeps its tensor name.
    """
    def shorten(name: str) -> str:
        for suffix in ("_output_0", ":0"):
            if name.endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)]
        return name

    wanted = {t: shorten(t) for t in tensors}
    counts: dict[str, int] = {}
    for short in [*wanted.values(), *(t for t in tensors if wanted[t] != t)]:
        counts[short] = counts.get(short, 0) + 1
    return {t: (s if counts[s] == 1 or s == t else t) for t, s in wanted.items()}


def layouts(order: Sequence[Node], source: str, source_label: str | None,
            ranks: dict[str, int]) -> dict[str, str]:
    """Axis labels (``NCHW``, ``NHWC``, ...) of the tensors whose layout the graph fixes.

    The rule: the probe input is labelled from the chosen input layout; outputs of ops that
    ONNX defines channels-first (Conv, pooling, BatchNormalization, ...) are ``NC`` + spatial
    axes; a Transpose permutes its input's labels; elementwise and shape-preserving ops
    (Relu, Add, Clip, Pad, ...) inherit the labels of an input of the same rank. Any other
    tensor (after a Reshape, MatMul, ...) has no label and is returned as it is. This follows
    the Transposes that tf2onnx and jax2onnx insert around channels-last graphs.
    """
    labels: dict[str, str] = {}
    if source_label:
        labels[source] = source_label
    for node in order:
        for out in node.outputs:
            rank = ranks.get(out)
            if not out or rank is None:
                continue
            label = _label(node, rank, labels, ranks)
            if label:
                labels[out] = label
    return labels


def _label(node: Node, rank: int, labels: dict[str, str], ranks: dict[str, int]) -> str | None:
    if node.op in CHANNELS_FIRST_OPS and rank >= 3:
        return "NC" + "DHW"[-(rank - 2):] if rank <= 5 else None
    if node.op == "Transpose" and node.inputs and node.inputs[0] in labels:
        source = labels[node.inputs[0]]
        perm = node.perm if node.perm is not None else tuple(reversed(range(len(source))))
        if len(perm) == len(source) == rank:
            return "".join(source[p] for p in perm)
        return None
    if node.op in LAYOUT_PRESERVING_OPS:
        for name in node.inputs:
            if name in labels and ranks.get(name, len(labels[name])) == rank == len(labels[name]):
                return labels[name]
    return None


def channel_axis(label: str | None) -> int | None:
    """The axis to move to position 1 for a channels-first result, or None to leave as is."""
    if not label or label[0] != "N" or "C" not in label:
        return None
    axis = label.index("C")
    return axis if axis != 1 else None
