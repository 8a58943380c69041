"""A cross-framework comparison from the command line alone, run from the integration folder:

    neurocorr compare mlp.onnx builders_keras:build_mlp --probe probe.npy --json out.json

The ONNX file is the torch reference MLP exported with torch.onnx; the Keras model is built
by ``builders_keras.build_mlp`` (found because the command runs where that module is).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("keras")
pytest.importorskip("neurocorr_onnx", reason="needs the ONNX provider: pip install -e plugins/neurocorr-onnx")

from builders_onnx import export_torch
from builders_torch import build_mlp
from reference import mlp_probe

pytestmark = pytest.mark.slow  # a fresh process that imports TensorFlow

HERE = Path(__file__).parent


def neurocorr(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``neurocorr`` command of this environment in the integration folder."""
    script = Path(sys.executable).with_name("neurocorr")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "neurocorr_core.cli"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([*command, *args], cwd=HERE, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli")
    np.save(folder / "probe.npy", mlp_probe())
    return {"onnx": export_torch(build_mlp(), folder / "mlp.onnx", (16,)), "probe": folder / "probe.npy",
            "json": folder / "out.json"}


def test_cli_compares_an_onnx_file_with_a_keras_builder(files: dict[str, Path]) -> None:
    done = neurocorr("compare", str(files["onnx"]), "builders_keras:build_mlp", "--probe", str(files["probe"]),
                     "--json", str(files["json"]), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "score A->B 1.0000" in done.stdout and "B->A 1.0000" in done.stdout, done.stdout
    result = json.loads(files["json"].read_text())
    assert result["config"]["provider_a"] == "onnx" and result["config"]["provider_b"] == "tensorflow"
    assert [la["name"] for la in result["layers_a"]] == ["/1/Relu", "/3/Relu"]
    assert [la["neurons"] for la in result["layers_b"]] == [12, 8]
    assert result["partner_a"] == list(range(20)) and result["partner_b"] == list(range(20))
    assert result["score"]["a_to_b"] >= 0.9999 and result["score"]["b_to_a"] >= 0.9999


def test_cli_lists_the_onnx_layers(files: dict[str, Path]) -> None:
    done = neurocorr("layers", str(files["onnx"]), "--input-shape", "16")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("/1/Relu" in line and "activation" in line and "Relu" in line for line in lines), done.stdout
    assert any("/0/Gemm" in line and "dense" in line for line in lines), done.stdout


def test_cli_reports_a_truncated_onnx_file(files: dict[str, Path], tmp_path: Path) -> None:
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(files["onnx"].read_bytes()[:300])
    done = neurocorr("compare", str(cut), "builders_keras:build_mlp", "--probe", str(files["probe"]), "--quiet")
    assert done.returncode == 2
    assert "is not a readable ONNX model" in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.fixture(scope="module")
def cnn_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from builders_torch import build_cnn
    from reference import cnn_probe

    folder = tmp_path_factory.mktemp("cli-cnn")
    np.save(folder / "probe.npy", cnn_probe())
    onnx = export_torch(build_cnn(), folder / "cnn.onnx", cnn_probe().shape[1:])
    return {"onnx": onnx, "probe": folder / "probe.npy"}


def test_cli_passes_provider_options(cnn_files: dict[str, Path]) -> None:
    """--option-b reaches the Keras provider: 'nhwc' moves the NCHW probe's channels last (the
    CNN's identity holds), 'nchw' feeds it as given and the model refuses its shape."""
    args = ("compare", str(cnn_files["onnx"]), "builders_keras:build_cnn", "--probe", str(cnn_files["probe"]),
            "--quiet")
    out = cnn_files["probe"].with_name("nhwc.json")
    done = neurocorr(*args, "--option-b", "layout=nhwc", "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    for layer in result["layers_a"] + result["layers_b"]:  # every live neuron finds its twin; dead ones score 0
        assert layer["score"] == pytest.approx((layer["neurons"] - layer["dead"]) / layer["neurons"], abs=1e-4)
    refused = neurocorr(*args, "--option-b", "layout=nchw")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert "layout" in refused.stderr, refused.stderr


def test_cli_refuses_an_unknown_provider_option(cnn_files: dict[str, Path]) -> None:
    done = neurocorr("compare", str(cnn_files["onnx"]), "builders_keras:build_cnn", "--probe",
                     str(cnn_files["probe"]), "--quiet", "--option-a", "colour=red")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "provider 'onnx' has no option(s) colour; the options it takes:" in done.stderr
    assert "layout" in done.stderr, done.stderr
