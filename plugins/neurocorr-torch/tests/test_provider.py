"""Loading PyTorch models every supported way, and the errors for the unsupported ones."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models import small_cnn, small_mlp
from neurocorr_core import NeurocorrError, compare, open_model
from neurocorr_torch import TorchProvider

HERE = Path(__file__).parent


def digits_like(n=30):
    return np.random.default_rng(0).random((n, 1, 8, 8), dtype=np.float32)


def test_layers_in_forward_order_with_kinds():
    layers = TorchProvider(small_cnn()).layers(digits_like(2))
    assert [(la.name, la.kind, la.shape) for la in layers] == [
        ("0", "conv", (4, 6, 6)), ("1", "activation", (4, 6, 6)), ("2", "pool", (4, 3, 3)),
        ("3", "conv", (6, 1, 1)), ("4", "activation", (6, 1, 1)), ("5", "other", (6,)),
        ("6", "dense", (5,)), ("7", "activation", (5,))]


def test_containers_are_layers_too():
    model = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()), torch.nn.Linear(3, 2))
    names = [la.name for la in TorchProvider(model).layers(np.zeros((2, 4), np.float32))]
    assert names == ["0.0", "0.1", "0", "1"]  # a container finishes after its children


def test_training_mode_restored_and_dropout_off_during_capture():
    model = torch.nn.Sequential(torch.nn.Linear(4, 50), torch.nn.Dropout(0.9), torch.nn.ReLU()).train()
    prov = TorchProvider(model)
    x = np.ones((3, 4), np.float32)
    out1 = next(prov.activations([x], ["1"]))["1"]
    out2 = next(prov.activations([x], ["1"]))["1"]
    np.testing.assert_array_equal(out1, out2)
    assert model.training


def test_torchscript_file_equals_eager(tmp_path):
    model = small_cnn()
    torch.jit.script(model).save(tmp_path / "m.pt")
    eager, script = TorchProvider(model), open_model(tmp_path / "m.pt")
    x = digits_like(6)
    assert [la.name for la in script.layers(x)] == [la.name for la in eager.layers(x)]
    names = ["1", "4", "7"]
    a, b = next(eager.activations([x], names)), next(script.activations([x], names))
    for name in names:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-6)


def test_pickled_model_needs_trust(tmp_path):
    torch.save(small_mlp(), tmp_path / "full.pth")
    with pytest.raises(NeurocorrError, match="pickled model.*trust_pickle=True"):
        open_model(tmp_path / "full.pth")
    prov = open_model(tmp_path / "full.pth", trust_pickle=True)
    assert [la.name for la in prov.layers(digits_like(2))][:2] == ["0", "1"]


def test_state_dict_file_is_explained(tmp_path):
    torch.save(small_mlp().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(NeurocorrError, match="weights only.*module:function"):
        open_model(tmp_path / "weights.pt")


def test_file_that_is_not_a_model(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"this is not a model")
    with pytest.raises(NeurocorrError, match="not a PyTorch model file"):
        open_model(tmp_path / "junk.pt")


def test_rejected_probe_says_expected_shape():
    model = torch.nn.Sequential(torch.nn.Linear(64, 4), torch.nn.ReLU())
    with pytest.raises(NeurocorrError, match=r"rejected a probe batch of shape \(2, 1, 8, 8\).*expects \(N, 64\)"):
        compare(model, model, digits_like())


def test_module_callable_reference(monkeypatch):
    monkeypatch.chdir(HERE)
    result = compare("models:mlp_a", "models:mlp_b", digits_like())
    assert result.model_a == "models:mlp_a" and 0 < result.score.symmetric < 1


def test_bad_reference(monkeypatch):
    monkeypatch.chdir(HERE)
    with pytest.raises(NeurocorrError, match="module 'models' has no attribute 'nope'"):
        compare("models:nope", "models:mlp_b", digits_like())
    with pytest.raises(NeurocorrError, match="cannot import 'no_such_mod'"):
        compare("no_such_mod:f", "models:mlp_b", digits_like())


def run_cli(*args, cwd=HERE):
    return subprocess.run([sys.executable, "-m", "neurocorr_core.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_cli_compare_json(tmp_path):
    out = tmp_path / "r.json"
    proc = run_cli("compare", "models:mlp_a", "models:mlp_b", "--probe", "digits", "--probe-limit", "200",
                   "--neurons", "position", "--layers-a", "kind:relu", "--depth-penalty", "none", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    for key in ("a_to_b", "b_to_a", "symmetric"):
        assert 0 < data["score"][key] <= 1
    assert [la["name"] for la in data["layers_a"]] == ["2", "4"]
    assert data["config"]["neurons"] == "position" and data["samples"] == 200
    assert set(data["versions"]) >= {"torch", "pearson", "builtin"}
    assert "symmetric" in proc.stdout


def test_cli_error_exit_code_and_no_output_file(tmp_path):
    out = tmp_path / "r.json"
    proc = run_cli("compare", "models:mlp_a", "models:mlp_b", "--probe", "digits", "--layers-a", "zzz",
                   "--json", str(out))
    assert proc.returncode == 2
    assert "neurocorr: error: layer pattern 'zzz' matches no layer" in proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_layers():
    proc = run_cli("layers", "models:mlp_a", "--input-shape", "1,8,8", "--json")
    assert proc.returncode == 0, proc.stderr
    layers = json.loads(proc.stdout)
    assert [la["name"] for la in layers] == ["0", "1", "2", "3", "4", "5"]
    assert layers[2] == {"name": "2", "shape": [12], "depth": 2, "kind": "activation", "op": "ReLU"}


class Shared(torch.nn.Module):
    """One ReLU module called twice per forward, as EfficientNet does."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.act = torch.nn.Linear(4, 3), torch.nn.Linear(3, 2), torch.nn.ReLU()

    def forward(self, x):
        return self.act(self.fc2(self.act(self.fc1(x))))


@pytest.mark.parametrize("scripted", [False, True])
def test_every_call_of_a_reused_module_is_a_layer(tmp_path, scripted):
    torch.manual_seed(0)
    model = Shared()
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    if scripted:
        torch.jit.script(model).save(tmp_path / "shared.pt")
        prov = open_model(tmp_path / "shared.pt")
    else:
        prov = TorchProvider(model)
    assert [(la.name, la.shape) for la in prov.layers(x) if la.kind == "activation"] == [("act", (3,)), ("act#1", (2,))]
    out = next(prov.activations([x], ["act#1", "act"]))
    with torch.no_grad():
        first = torch.relu(model.fc1(torch.from_numpy(x)))
        np.testing.assert_allclose(out["act"], first.numpy(), rtol=1e-6)
        np.testing.assert_allclose(out["act#1"], torch.relu(model.fc2(first)).numpy(), rtol=1e-6)


class _ThreadProbe(torch.nn.Module):
    """A linear layer that records torch's intra-op threads during each forward."""

    def __init__(self, width):
        super().__init__()
        self.fc = torch.nn.Linear(width, 4)
        self.seen = []

    def forward(self, x):
        self.seen.append(torch.get_num_threads())
        return self.fc(x)


def test_small_cpu_batches_run_on_one_torch_thread_and_the_setting_is_restored(monkeypatch):
    from neurocorr_torch import provider as torch_provider

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        module = _ThreadProbe(8)
        provider = TorchProvider(module)
        list(provider.activations([np.ones((16, 8), np.float32)], ["fc"]))
        monkeypatch.setattr(torch_provider, "SMALL_BATCH", 16 * 36 - 1)  # 36 weights: now too big
        list(provider.activations([np.ones((16, 8), np.float32)], ["fc"]))
        assert module.seen == [1, 2]
        assert torch.get_num_threads() == 2
        assert not provider.single_threaded((16, 8))  # the promise the core overlaps on, kept
        monkeypatch.setattr(torch_provider, "SMALL_BATCH", 16 * 36)
        assert provider.single_threaded((16, 8)) and not provider.single_threaded((17, 8))
        assert not provider.single_threaded((16, 2, 8))  # weights reused across the middle axis
        monkeypatch.setattr(torch_provider, "SMALL_BATCH", 1 << 62)
        cnn = small_cnn()  # weights reused across positions: parameters x samples is no measure
        seen = []
        cnn.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
        list(TorchProvider(cnn).activations([digits_like(4)], ["0"]))
        assert seen == [2]
        assert not TorchProvider(cnn).single_threaded((4, 1, 8, 8))
    finally:
        torch.set_num_threads(before)


def test_overlapping_small_batches_restore_torch_threads_after_the_last():
    """Providers in threads of one process (the threads executor): the batch that finishes first
    must not restore torch's threads under one still running, nor the last leave torch on one."""
    from neurocorr_torch.provider import _one_thread

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first, second = _one_thread(True), _one_thread(True)
        first.__enter__()
        second.__enter__()
        assert torch.get_num_threads() == 1
        first.__exit__(None, None, None)
        assert torch.get_num_threads() == 1  # the second batch still runs
        second.__exit__(None, None, None)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _linear_cka(x, y):
    """Kornblith et al.'s linear CKA, naively in float64: centred Gram-free form."""
    x, y = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def test_small_dense_models_overlap_their_forwards_with_the_metric():
    """Two small MLPs: the batches are made in the second thread, in short chunks, and the linear
    CKA of every layer pair still matches naive float64 CKA of the same activations."""
    import threading

    a, b = small_mlp(0), small_mlp(1)
    threads = []
    a.register_forward_pre_hook(lambda _m, x: threads.append((threading.current_thread().name, len(x[0]))))
    probe = np.random.default_rng(1).standard_normal((5000, 64)).astype(np.float32)
    result = compare(a, b, probe, metric="cka", batch_size=256, layers_a="*", layers_b="*")
    batches = [name for name, rows in threads if rows > 2]  # not the 2-sample look at the layers
    assert batches == ["neurocorr-batches"] * 20
    names_a, names_b = ([la.info.name for la in side] for side in (result.layers_a, result.layers_b))
    out_a, out_b = (next(TorchProvider(m).activations([probe], names)) for m, names in ((a, names_a), (b, names_b)))
    for i, la in enumerate(names_a):
        for j, lb in enumerate(names_b):
            want = _linear_cka(out_a[la].reshape(5000, -1).astype(np.float64),
                               out_b[lb].reshape(5000, -1).astype(np.float64))
            assert abs(result.layer_table[i, j] - want) < 1e-6, (la, lb)


def test_a_memory_budget_or_a_conv_net_keeps_one_thread_of_batches():
    import threading

    for model, probe, budget in ((small_mlp(), np.random.default_rng(0).random((600, 64), np.float32), "1GB"),
                                 (small_cnn(), digits_like(600), None)):
        threads: list[str] = []
        model.register_forward_pre_hook(lambda *_, seen=threads: seen.append(threading.current_thread().name))
        compare(model, model, probe, metric="cka", batch_size=256, memory_budget=budget)
        assert len(threads) > 3 and set(threads) == {threading.current_thread().name}
