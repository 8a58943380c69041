"""Graph reading without running anything: names, order, the layout rule, external paths."""

from pathlib import Path

import numpy as np
import onnx

from neurocorr_onnx import OnnxProvider
from neurocorr_onnx.graph import Node, _inside, channel_axis, layouts, nodes_in_order, short_names
from onnx_test_models import forward, nchw_cnn, probe, weights


def test_short_names_per_exporter():
    tensors = ["/act/Relu_output_0", "model/re_lu/Relu:0", "relu", "relu_out_0", "/pool/MaxPool_output_1"]
    assert short_names(tensors) == {
        "/act/Relu_output_0": "/act/Relu",        # torch legacy
        "model/re_lu/Relu:0": "model/re_lu/Relu",  # tf2onnx
        "relu": "relu",                            # torch dynamo
        "relu_out_0": "relu_out_0",                # jax2onnx
        "/pool/MaxPool_output_1": "/pool/MaxPool_output_1",
    }


def test_short_names_never_collide():
    names = short_names(["a:0", "a", "b_output_0", "b:0", "c:0"])
    assert names == {"a:0": "a:0", "a": "a", "b_output_0": "b_output_0", "b:0": "b:0", "c:0": "c"}
    assert len(set(names.values())) == len(names)


def test_nodes_in_order_sorts_a_shuffled_graph():
    model = nchw_cnn(weights())
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(reversed(nodes))  # an unsorted (invalid but seen) file
    order = [n.op for n in nodes_in_order(model.graph)]
    assert order == ["Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu", "Gemm"]


def _node(op, inputs, outputs, perm=None):
    return Node(0, op, tuple(inputs), tuple(outputs), perm)


def test_layout_rule():
    order = [
        _node("Transpose", ["x"], ["t"], (0, 3, 1, 2)),    # NHWC input -> NCHW
        _node("Relu", ["t"], ["r"]),                       # inherits NCHW
        _node("Transpose", ["r"], ["back"], (0, 2, 3, 1)),  # -> NHWC
        _node("Add", ["bias", "back"], ["added"]),          # labelled input of the same rank: NHWC
        _node("Conv", ["added"], ["conv"]),                 # channels-first by the ONNX spec
        _node("Reshape", ["conv"], ["flat"]),               # unknown
        _node("Relu", ["flat"], ["r2"]),                    # still unknown
        _node("Conv", ["seq"], ["conv1d"]),                 # 3-D: NCW
    ]
    ranks = {"x": 4, "t": 4, "r": 4, "back": 4, "bias": 4, "added": 4, "conv": 4, "flat": 2, "r2": 2,
             "seq": 3, "conv1d": 3}
    labels = layouts(order, "x", "NHWC", ranks)
    assert labels == {"x": "NHWC", "t": "NCHW", "r": "NCHW", "back": "NHWC", "added": "NHWC",
                      "conv": "NCHW", "conv1d": "NCW"}
    assert [channel_axis(labels.get(k)) for k in ("t", "back", "flat", "conv1d")] == [None, 3, None, None]
    assert layouts(order, "x", None, ranks).get("t") is None  # an unknown input stays unknown


def test_default_transpose_reverses_axes():
    labels = layouts([_node("Transpose", ["x"], ["y"])], "x", "NCHW", {"x": 4, "y": 4})
    assert labels["y"] == "WHCN"
    assert channel_axis(labels["y"]) is None  # batch not first: left as it is


def test_inside(tmp_path):
    assert _inside(tmp_path, "w.data") and _inside(tmp_path, "sub/w.data") and _inside(tmp_path, "./w.data")
    for bad in ("", "../w.data", "/etc/passwd", "sub/../../w.data", "..\\w.data", "C:\\w.data", "C:w.data"):
        assert not _inside(tmp_path, bad), bad


def test_model_from_another_folder_reads_its_own_data(tmp_path, monkeypatch):
    """External data is looked up next to the model, not in the working folder."""
    w = weights()
    folder = tmp_path / "models"
    folder.mkdir()
    onnx.save(nchw_cnn(w), str(folder / "m.onnx"), save_as_external_data=True, location="m.data",
              size_threshold=0)
    monkeypatch.chdir(tmp_path)
    prov = OnnxProvider(Path("models") / "m.onnx")
    x = probe()
    prov.layers(x[:2])
    np.testing.assert_allclose(next(prov.activations([x], ["relu1"]))["relu1"], forward(w, x)["relu1"],
                               rtol=1e-5, atol=1e-5)
