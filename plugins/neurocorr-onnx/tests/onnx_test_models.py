"""Small ONNX graphs built with onnx.helper (no deep-learning framework) and their numpy forward.

CNN: x -> Conv 3x3 valid (C -> 4) -> Relu -> MaxPool 2 -> Flatten -> Gemm 36 -> 5 -> Relu -> Gemm 5 -> 3.
The NHWC variant takes (N, 8, 8, C) and wraps the conv in Transposes the way tf2onnx and
jax2onnx do, so its first Relu runs on an NHWC tensor.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def weights(channels: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "conv.w": rng.normal(0, 0.5, (4, channels, 3, 3)).astype(np.float32),
        "conv.b": rng.normal(0, 0.1, 4).astype(np.float32),
        "fc1.w": rng.normal(0, 0.3, (5, 36)).astype(np.float32),
        "fc1.b": rng.normal(0, 0.1, 5).astype(np.float32),
        "fc2.w": rng.normal(0, 0.3, (3, 5)).astype(np.float32),
        "fc2.b": rng.normal(0, 0.1, 3).astype(np.float32),
    }


def probe(n: int = 12, channels: int = 1, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, channels, 8, 8)).astype(np.float32)


def _inits(w: dict[str, np.ndarray]) -> list[TensorProto]:
    return [numpy_helper.from_array(v, k) for k, v in w.items()]


def _model(nodes: list, inputs: list, w: dict[str, np.ndarray], opset: int = 17) -> onnx.ModelProto:
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph(nodes, "cnn", inputs, [out], _inits(w))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _head(source: str) -> list:
    return [
        helper.make_node("MaxPool", [source], ["pool"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc1.w", "fc1.b"], ["fc1"], transB=1, name="fc1"),
        helper.make_node("Relu", ["fc1"], ["relu2"], name="act2"),
        helper.make_node("Gemm", ["relu2", "fc2.w", "fc2.b"], ["logits"], transB=1, name="fc2"),
    ]


def nchw_cnn(w: dict[str, np.ndarray], batch: int | str = "N") -> onnx.ModelProto:
    """Input x (batch, C, 8, 8); ``batch`` an int fixes the batch size."""
    channels = w["conv.w"].shape[1]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, channels, 8, 8])
    nodes = [helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["conv"], name="conv"),
             helper.make_node("Relu", ["conv"], ["relu1"], name="act1"), *_head("relu1")]
    return _model(nodes, [x], w)


def nhwc_cnn(w: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Input x (N, 8, 8, C), as tf2onnx leaves a Keras model: the Relu runs channels-last."""
    channels = w["conv.w"].shape[1]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 8, channels])
    nodes = [
        helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Conv", ["x_nchw", "conv.w", "conv.b"], ["conv"], name="conv"),
        helper.make_node("Transpose", ["conv"], ["conv_nhwc"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Relu", ["conv_nhwc"], ["relu1:0"], name="act1"),
        helper.make_node("Transpose", ["relu1:0"], ["relu1_nchw"], perm=[0, 3, 1, 2], name="back"),
        *_head("relu1_nchw"),
    ]
    return _model(nodes, [x], w)


def two_input_model() -> onnx.ModelProto:
    """y = Relu(x + shift), x and shift both (N, 4)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    shift = helper.make_tensor_value_info("shift", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    nodes = [helper.make_node("Add", ["x", "shift"], ["sum"], name="add"),
             helper.make_node("Relu", ["sum"], ["y"], name="relu")]
    model = helper.make_model(helper.make_graph(nodes, "two", [x, shift], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def clip_model() -> onnx.ModelProto:
    """y = Clip(x, 0, 6): how torch exports ReLU6."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    lo = numpy_helper.from_array(np.array(0, np.float32), "lo")
    hi = numpy_helper.from_array(np.array(6, np.float32), "hi")
    node = helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="/act/Clip")
    model = helper.make_model(helper.make_graph([node], "clip", [x], [y], [lo, hi]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


# -- numpy reference (float64) ----------------------------------------------------------------
def forward(w: dict[str, np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
    """Conv output, first Relu (NCHW) and second Relu of the CNN for an NCHW probe."""
    n, _, h, wd = x.shape
    k = w["conv.w"].astype(np.float64)
    conv = np.zeros((n, 4, h - 2, wd - 2))
    for i in range(3):
        for j in range(3):
            conv += np.einsum("nchw,oc->nohw", x[:, :, i:i + h - 2, j:j + wd - 2].astype(np.float64),
                              k[:, :, i, j])
    conv += w["conv.b"][None, :, None, None]
    relu1 = np.maximum(conv, 0)
    pool = relu1.reshape(n, 4, 3, 2, 3, 2).max(axis=(3, 5))
    relu2 = np.maximum(pool.reshape(n, -1) @ w["fc1.w"].T + w["fc1.b"], 0)
    return {"conv": conv, "relu1": relu1, "relu2": relu2}


def relu_as_max_model() -> onnx.ModelProto:
    """y = Max(x, 0) with the zero a Constant node, and z = Max(y, 1): how jax2onnx writes
    ``jax.nn.relu`` when it traces through it; only the first is a ReLU."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4])
    nodes = [helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.float32))),
             helper.make_node("Max", ["x", "zero"], ["max_out_0"]),
             helper.make_node("Max", ["max_out_0", "one"], ["z"])]
    one = numpy_helper.from_array(np.ones(1, np.float32), "one")
    model = helper.make_model(helper.make_graph(nodes, "max", [x], [z], [one]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model
