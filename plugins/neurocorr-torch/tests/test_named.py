"""Models by name (torchvision:NAME, timm:NAME), built offline with random weights, and devices."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from neurocorr_core import NeurocorrError, compare, open_model
from neurocorr_torch import TorchProvider
from neurocorr_torch.named import parse

IMAGES = np.random.default_rng(0).normal(size=(16, 3, 32, 32)).astype(np.float32)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: weights come from local files only."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_parse():
    name = parse("torchvision:resnet18?weights=DEFAULT&num_classes=10&seed=3")
    assert (name.library, name.model, name.weights, name.seed, name.kwargs) == \
        ("torchvision", "resnet18", "DEFAULT", 3, {"num_classes": 10})
    assert name.checkpoint is None
    assert parse("timm:resnet18?weights=~/w.pth").checkpoint == os.path.expanduser("~/w.pth")
    with pytest.raises(NeurocorrError, match="not KEY=VALUE"):
        parse("torchvision:resnet18?weights")


def test_layers_cli_lists_torchvision_resnet18():
    names = layers_cli()
    assert names[:3] == ["conv1", "bn1", "relu"] and "layer4.1.relu#1" in names and names[-1] == "fc"


def test_compare_two_models_by_name():
    same = compare("torchvision:resnet18", "torchvision:resnet18", IMAGES, metric="pearson")
    other = compare("torchvision:resnet18", "torchvision:resnet18?seed=1", IMAGES, metric="pearson")
    n, dead = same.value_a.size, sum(layer.dead for layer in same.layers_a)
    assert same.score.symmetric == pytest.approx((n - dead) / n, abs=1e-6)  # seeded: the same weights
    assert 0 < other.score.symmetric < same.score.symmetric
    assert same.model_a == "torchvision:resnet18"


def test_timm_models_by_name():
    pytest.importorskip("timm")
    layers = open_model("timm:convnext_atto?num_classes=10").layers(IMAGES[:2])
    assert layers[-1].shape == (10,) and any(layer.kind == "activation" for layer in layers)


def test_checkpoint_file_round_trip(tmp_path):
    built = open_model("torchvision:mobilenet_v3_small?seed=7").module
    path = tmp_path / "mnv3.pth"
    torch.save(built.state_dict(), path)
    loaded = open_model(f"torchvision:mobilenet_v3_small?weights={path}")
    with torch.no_grad():
        np.testing.assert_allclose(loaded.module.eval()(torch.from_numpy(IMAGES)).numpy(),
                                   built.eval()(torch.from_numpy(IMAGES)).numpy(), rtol=1e-6, atol=1e-6)


def test_missing_checkpoint_is_one_line_naming_the_path(tmp_path):
    missing = tmp_path / "nope" / "r18.pth"
    out = subprocess.run([sys.executable, "-m", "neurocorr_core.cli", "layers",
                          f"torchvision:resnet18?weights={missing}", "--input-shape", "3,32,32"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0], out.stderr


def test_library_weights_missing_from_the_cache_are_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(NeurocorrError, match=r"not in the local cache; looked for .*resnet18-[0-9a-f]+\.pth"):
        open_model("torchvision:resnet18?weights=DEFAULT")
    assert not any(tmp_path.rglob("*.pth"))


def test_library_weights_from_the_local_cache(tmp_path, monkeypatch):
    """DEFAULT weights lying in torch's hub cache are used (here: a file put there by the test)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    source = open_model("torchvision:resnet18?seed=5").module
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(source.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    # torchvision checks the file's hash prefix against its name only when asked (check_hash=False)
    loaded = open_model("torchvision:resnet18?weights=IMAGENET1K_V1").module
    pairs = zip(loaded.state_dict().values(), source.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_bad_names():
    with pytest.raises(NeurocorrError, match="torchvision has no model 'resnet19'.*resnet18"):
        open_model("torchvision:resnet19")
    with pytest.raises(NeurocorrError, match="no weights 'FOO'.*IMAGENET1K_V1"):
        open_model("torchvision:resnet18?weights=FOO")
    with pytest.raises(NeurocorrError, match="seed must be an integer"):
        open_model("torchvision:resnet18?seed=x")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_on_a_cpu_only_machine_is_a_clear_error():
    model = torch.nn.Linear(3, 2)
    with pytest.raises(NeurocorrError, match="device 'cuda' asked for, but this PyTorch .*use device=cpu"):
        TorchProvider(model, device="cuda")
    with pytest.raises(NeurocorrError, match="device 'cuda:1'"):
        compare(model, model, np.ones((4, 3), np.float32), options_a={"device": "cuda:1"})
    with pytest.raises(NeurocorrError, match="'gpu' is not a torch device; use cpu, cuda"):
        TorchProvider(model, device="gpu")


def layers_cli(*extra: str) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "neurocorr_core.cli", "layers", "torchvision:resnet18",
                          "--input-shape", "3,32,32", "--json", *extra], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return [layer["name"] for layer in json.loads(out.stdout)]


def test_layers_in_execution_order_containers_only_with_all():
    shown, everything = layers_cli(), layers_cli("--all")
    assert "layer1.0" not in shown and "layer1" not in shown and "layer1.0.relu#1" in shown
    assert set(shown) < set(everything)
    # a container comes after its last child: the block after its second ReLU, layer4 after its last block
    assert everything.index("layer1.0") == everything.index("layer1.0.relu#1") + 1
    assert everything.index("layer4") == everything.index("layer4.1") + 1


def test_an_experiment_file_names_models_by_name(tmp_path):
    """``[models]`` takes a model by name (with its query) as the command line does."""
    np.save(tmp_path / "probe.npy", IMAGES[:8])
    (tmp_path / "exp.toml").write_text('[models]\na = "torchvision:resnet18"\nb = "torchvision:resnet18?seed=1"\n\n'
                                       '[compare]\nprobe = "probe.npy"\nlayers_a = "layer4*"\nlayers_b = "layer4*"\n'
                                       'quiet = true\n')
    env = {**os.environ, "NEUROCORR_DISABLE_PLUGINS": "tensorflow,jax,onnx", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-m", "neurocorr_core.cli", "run", "exp.toml", "--json", "-"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["model_b"] == "torchvision:resnet18?seed=1" and 0 < result["score"]["symmetric"] < 1
