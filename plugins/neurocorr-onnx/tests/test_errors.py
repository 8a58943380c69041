"""Bad input a user can give the ONNX provider: each a clear NeurocorrError (or an unavailable plugin)."""

import os
import sys

import numpy as np
import onnx
import pytest

from neurocorr_core import NeurocorrError, PluginManager, open_model
from neurocorr_onnx import OnnxProvider
from onnx_test_models import forward, nchw_cnn, probe, weights


def save(model, path):
    onnx.save(model, str(path))
    return path


# -- not a model, truncated ----------------------------------------------------------------------
def test_a_file_that_is_not_a_model(tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("hello, I am a text file with an .onnx suffix\n")
    with pytest.raises(NeurocorrError, match=r"notes.onnx is not a readable ONNX model.*export it again"):
        OnnxProvider(text)
    npy = tmp_path / "array.onnx"
    np.save(npy.with_suffix(".npy"), np.arange(10.0))
    npy.write_bytes(npy.with_suffix(".npy").read_bytes())
    with pytest.raises(NeurocorrError, match="ONNX model"):
        OnnxProvider(npy)


def test_an_empty_file_a_folder_and_a_missing_file(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(NeurocorrError, match=r"not a complete ONNX model: it has 0 graph nodes"):
        OnnxProvider(tmp_path / "empty.onnx")
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(NeurocorrError, match=r"is a folder, not an .onnx file"):
        OnnxProvider(tmp_path / "dir.onnx")
    with pytest.raises(NeurocorrError, match=r"does not exist"):
        OnnxProvider(tmp_path / "missing.onnx")
    with pytest.raises(NeurocorrError, match=r"does not exist"):
        open_model(str(tmp_path / "missing.onnx"))


def test_a_truncated_file(tmp_path):
    data = save(nchw_cnn(weights()), tmp_path / "whole.onnx").read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(NeurocorrError, match=r"cut.onnx is not a readable ONNX model.*truncated"):
        OnnxProvider(cut)


def test_a_file_cut_between_two_fields(tmp_path):
    """A cut at a field boundary parses as a smaller model; it is still refused."""
    data = save(nchw_cnn(weights()), tmp_path / "whole.onnx").read_bytes()
    boundaries = []
    for end in range(len(data) - 1, 0, -1):
        try:
            onnx.ModelProto.FromString(data[:end])
        except Exception:
            continue
        boundaries.append(end)
    assert boundaries, "no field boundary found"
    for end in boundaries:
        cut = tmp_path / "cut.onnx"
        cut.write_bytes(data[:end])
        with pytest.raises(NeurocorrError, match=r"not a complete ONNX model|cannot load"):
            OnnxProvider(cut)


def test_onnxruntime_load_failure_is_explained(tmp_path):
    model = nchw_cnn(weights())
    model.graph.node[1].op_type = "NoSuchOp"
    with pytest.raises(NeurocorrError, match=r"onnxruntime cannot load .*bad.onnx.*checker reports"):
        OnnxProvider(save(model, tmp_path / "bad.onnx"))


# -- external data ---------------------------------------------------------------------------------
def _with_external_data(folder, location="cnn.data"):
    folder.mkdir(parents=True, exist_ok=True)
    w = weights()
    path = folder / "cnn.onnx"
    onnx.save(nchw_cnn(w), str(path), save_as_external_data=True, location=location,
              size_threshold=0)
    return path, w


def _relocate(path, location):
    """Point every external tensor of ``path`` at ``location``."""
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, str(path))


def test_external_data_in_the_model_folder_is_read(tmp_path):
    path, w = _with_external_data(tmp_path / "model")
    assert (tmp_path / "model" / "cnn.data").exists()
    prov = OnnxProvider(path)
    assert prov.external
    x = probe()
    prov.layers(x[:2])
    np.testing.assert_allclose(next(prov.activations([x], ["relu2"]))["relu2"], forward(w, x)["relu2"],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("where", ["parent", "absolute", "nested-parent", "backslash"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, where):
    path, _ = _with_external_data(tmp_path / "model")
    outside = tmp_path / "secret.data"
    os.replace(tmp_path / "model" / "cnn.data", outside)
    location = {"parent": "../secret.data", "absolute": str(outside),
                "nested-parent": "sub/../../secret.data", "backslash": "..\\secret.data"}[where]
    _relocate(path, location)
    with pytest.raises(NeurocorrError, match=r"refers to external data .* outside the model's folder"):
        OnnxProvider(path)


def test_external_data_through_a_link_out_of_the_folder_is_refused(tmp_path):
    path, _ = _with_external_data(tmp_path / "model")
    os.replace(tmp_path / "model" / "cnn.data", tmp_path / "secret.data")
    os.symlink(tmp_path / "secret.data", tmp_path / "model" / "cnn.data")
    with pytest.raises(NeurocorrError, match=r"outside the model's folder"):
        OnnxProvider(path)


def test_the_refusal_comes_before_onnxruntime(tmp_path, monkeypatch):
    path, _ = _with_external_data(tmp_path / "model")
    _relocate(path, "../elsewhere.data")
    import onnxruntime

    def boom(*args, **kwargs):
        raise AssertionError("onnxruntime was reached")

    monkeypatch.setattr(onnxruntime, "InferenceSession", boom)
    with pytest.raises(NeurocorrError, match=r"outside the model's folder"):
        OnnxProvider(path)


def test_in_memory_model_with_external_data_asks_for_the_path(tmp_path):
    path, _ = _with_external_data(tmp_path / "model")
    with pytest.raises(NeurocorrError, match="pass the path of the .onnx file"):
        OnnxProvider(onnx.load(str(path), load_external_data=False))


# -- onnxruntime not installed -------------------------------------------------------------------------
@pytest.mark.parametrize("missing,hint", [("onnxruntime", "pip install onnxruntime"), ("onnx", "pip install onnx")])
def test_missing_framework_makes_the_plugin_unavailable(monkeypatch, missing, hint):
    monkeypatch.setitem(sys.modules, missing, None)  # import fails, as if not installed
    for name in [m for m in sys.modules if m == "neurocorr_onnx" or m.startswith("neurocorr_onnx.")]:
        monkeypatch.delitem(sys.modules, name)
    pm = PluginManager()
    info = {i.name: i for i in pm.plugins()}["onnx"]
    assert info.status == "unavailable"
    assert hint in info.reason
    assert "onnx" not in pm.names("provider")
    with pytest.raises(NeurocorrError, match=r"Unavailable plugins: .*onnx .*" + hint):
        pm.provider_for("model.onnx")
