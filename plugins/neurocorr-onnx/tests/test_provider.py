"""The ONNX provider on graphs built by hand, checked against a numpy forward pass."""

import numpy as np
import onnx
import pytest

from neurocorr_core import NeurocorrError, open_model
from neurocorr_onnx import OnnxModel, OnnxProvider
from onnx_test_models import (
    clip_model,
    forward,
    nchw_cnn,
    nhwc_cnn,
    probe,
    relu_as_max_model,
    two_input_model,
    weights,
)


def save(model, path):
    onnx.save(model, str(path))
    return path


def test_layers_are_every_per_sample_node_output(tmp_path):
    prov = OnnxProvider(save(nchw_cnn(weights()), tmp_path / "cnn.onnx"))
    layers = prov.layers(probe()[:2])
    assert [(la.name, la.op, la.kind) for la in layers] == [
        ("conv", "Conv", "conv"), ("relu1", "Relu", "activation"), ("pool", "MaxPool", "pool"),
        ("flat", "Flatten", "other"), ("fc1", "Gemm", "dense"), ("relu2", "Relu", "activation"),
        ("logits", "Gemm", "dense")]
    assert [la.shape for la in layers] == [(4, 6, 6), (4, 6, 6), (4, 3, 3), (36,), (5,), (5,), (3,)]
    assert [la.depth for la in layers] == list(range(7))


def test_activations_equal_numpy_forward(tmp_path):
    w, x = weights(), probe()
    prov = open_model(save(nchw_cnn(w), tmp_path / "cnn.onnx"))
    assert prov.name == "onnx"
    prov.layers(x[:2])
    outs = list(prov.activations([x[:5], x[5:]], ["conv", "relu1", "relu2"]))
    ref = forward(w, x)
    for name in ("conv", "relu1", "relu2"):
        got = np.concatenate([o[name] for o in outs])
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_arrays_of_earlier_batches_survive_later_runs():
    """session.run hands out onnxruntime's own buffers (no copy): a later run must not reuse them."""
    import gc

    w, x = weights(), probe()
    prov = OnnxProvider(nchw_cnn(w))
    prov.layers(x[:2])
    batches = [x[i:i + 3] for i in range(0, 9, 3)]  # equal sizes, so a reusing allocator would reuse
    kept = []
    for out in prov.activations(batches, ["relu1", "relu2"]):
        kept.append(out)
        gc.collect()
    for batch, out in zip(batches, kept, strict=True):
        ref = forward(w, batch)
        for name in ("relu1", "relu2"):
            np.testing.assert_allclose(out[name], ref[name], rtol=1e-5, atol=1e-5, err_msg=name)
            assert out[name].flags.writeable


def test_channels_last_graph_is_fed_nhwc_and_returns_channels_first():
    w, x = weights(channels=3), probe(channels=3)
    prov = OnnxProvider(nhwc_cnn(w))
    layers = {la.name: la for la in prov.layers(x[:2])}
    # relu1:0 runs on NHWC (N, 6, 6, 4) inside the graph; it leaves channels-first.
    assert layers["relu1"].shape == (4, 6, 6)
    assert layers["conv_nhwc"].shape == (4, 6, 6)  # a Transpose to NHWC is labelled, moved back
    assert layers["x_nchw"].shape == (3, 8, 8)
    out = next(prov.activations([x], ["relu1", "conv", "relu2"]))
    ref = forward(w, x)
    for name in ("relu1", "conv", "relu2"):
        np.testing.assert_allclose(out[name], ref[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_layout_option_overrides_auto():
    w, x = weights(channels=3), probe(channels=3)
    with pytest.raises(NeurocorrError, match="rejected a probe batch"):
        OnnxProvider(nhwc_cnn(w), layout="nchw").layers(x[:2])
    with pytest.raises(NeurocorrError, match="unknown layout 'chw'"):
        OnnxProvider(nhwc_cnn(w), layout="chw")
    forced = OnnxProvider(nhwc_cnn(w), layout="nhwc")
    forced.layers(x[:2])
    np.testing.assert_allclose(next(forced.activations([x], ["relu1"]))["relu1"], forward(w, x)["relu1"],
                               rtol=1e-5, atol=1e-5)


def test_square_images_with_symbolic_shape_use_the_transpose_behind_the_input():
    """8x8x8 probe: the shape cannot tell NCHW from NHWC; the Transpose(0,3,1,2) can."""
    w = weights(channels=8)
    model = nhwc_cnn(w)
    for dim in model.graph.input[0].type.tensor_type.shape.dim[1:]:
        dim.dim_param = "?"
    x = probe(channels=8)
    prov = OnnxProvider(model)
    prov.layers(x[:2])
    np.testing.assert_allclose(next(prov.activations([x], ["relu1"]))["relu1"], forward(w, x)["relu1"],
                               rtol=1e-4, atol=1e-4)


def test_clip_counts_as_an_activation():
    prov = OnnxProvider(clip_model())
    (layer,) = prov.layers(np.zeros((2, 4), np.float32))
    assert (layer.name, layer.kind, layer.op) == ("y", "activation", "Clip")


def test_max_with_zero_counts_as_an_activation():
    prov = OnnxProvider(relu_as_max_model())
    layers = prov.layers(np.zeros((2, 4), np.float32))
    assert [(la.name, la.kind, la.op) for la in layers] == [("max_out_0", "activation", "Max"),
                                                            ("z", "other", "Max")]


def test_no_layers_requested_runs_nothing():
    prov = OnnxProvider(nchw_cnn(weights()))
    prov.layers(probe()[:2])
    assert list(prov.activations([probe()[:3], probe()[3:]], [])) == [{}, {}]


def test_one_session_run_per_batch_and_session_cached(monkeypatch):
    prov = OnnxProvider(nchw_cnn(weights()))
    x = probe()
    prov.layers(x[:2])
    calls = []

    class Counting:
        def __init__(self, session):
            self.session = session

        def run(self, names, feeds):
            calls.append(tuple(names))
            return self.session.run(names, feeds)

    wanted = ["relu1", "relu2", "conv"]
    session = prov._session(["relu1", "relu2", "conv"])
    prov._sessions[(tuple(sorted(wanted)), ())] = Counting(session)
    outs = list(prov.activations([x[:4], x[4:8], x[8:]], wanted))
    assert len(outs) == 3 and len(calls) == 3
    assert all(set(c) == set(wanted) for c in calls)
    assert list(prov._sessions) == [(tuple(sorted(wanted)), ())]  # the discovery session is released
    list(prov.activations([x], wanted))
    assert len(calls) == 4  # the same session again


def test_fixed_batch_size_model_runs_in_chunks():
    w, x = weights(), probe(n=7)
    prov = OnnxProvider(nchw_cnn(w, batch=3))
    layers = prov.layers(x[:2])
    assert [la.name for la in layers][:2] == ["conv", "relu1"]
    out = np.concatenate([o["relu2"] for o in prov.activations([x[:5], x[5:]], ["relu2"])])
    np.testing.assert_allclose(out, forward(w, x)["relu2"], rtol=1e-5, atol=1e-5)


def test_unknown_layer_names_the_closest():
    prov = OnnxProvider(nchw_cnn(weights()))
    prov.layers(probe()[:2])
    with pytest.raises(NeurocorrError, match=r"no layer 'relu3'; closest: relu\d"):
        next(prov.activations([probe()], ["relu3"]))


def test_wrong_probe_shape_says_what_the_input_expects():
    prov = OnnxProvider(nchw_cnn(weights()))
    with pytest.raises(NeurocorrError, match=r"samples have shape \(1, 9, 9\).*\(N, 1, 8, 8\)"):
        prov.layers(np.zeros((2, 1, 9, 9), np.float32))
    with pytest.raises(NeurocorrError, match=r"input 'x' expects \(N, 1, 8, 8\)"):
        prov.layers(np.zeros((2, 64), np.float32))


# -- several inputs ----------------------------------------------------------------------------
def test_several_inputs_explain_what_is_supported():
    with pytest.raises(NeurocorrError, match=r"2 inputs \(x: float\(N, 4\); shift: float\(N, 4\)\).*"
                                             r"input_name=.*fixed_inputs="):
        OnnxProvider(two_input_model())
    with pytest.raises(NeurocorrError, match=r"input_name 'z' is not an input"):
        OnnxProvider(two_input_model(), input_name="z")
    with pytest.raises(NeurocorrError, match=r"inputs \['shift'\] have no value"):
        OnnxProvider(two_input_model(), input_name="x")
    with pytest.raises(NeurocorrError, match=r"fixed_inputs names \['bias'\]"):
        OnnxProvider(two_input_model(), fixed_inputs={"bias": np.zeros(4)})


def test_several_inputs_with_a_fixed_value():
    shift = np.array([0.5, -0.5, 1.0, -2.0], np.float32)
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    for prov in (OnnxProvider(two_input_model(), input_name="x", fixed_inputs={"shift": shift}),
                 OnnxProvider(OnnxModel(_saved_two_inputs(), input_name="x", fixed_inputs={"shift": shift})),
                 OnnxProvider(two_input_model(), fixed_inputs={"shift": shift})):
        assert [la.name for la in prov.layers(x[:2])] == ["sum", "y"]
        out = next(prov.activations([x], ["y"]))["y"]
        np.testing.assert_allclose(out, np.maximum(x + shift, 0), rtol=1e-6)


def _saved_two_inputs():
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp(prefix="neurocorr-onnx-")) / "two.onnx"
    onnx.save(two_input_model(), str(path))
    return path


def test_accepts():
    assert OnnxProvider.accepts("model.onnx") and OnnxProvider.accepts("MODEL.ONNX")
    assert OnnxProvider.accepts(nchw_cnn(weights())) and OnnxProvider.accepts(OnnxModel("m.onnx"))
    assert not OnnxProvider.accepts("model.pt") and not OnnxProvider.accepts(object())
