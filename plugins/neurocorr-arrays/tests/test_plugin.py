"""Precomputed activations are a plugin package: without it (blocked with NEUROCORR_DISABLE_PLUGINS)
models still compare, ``neurocorr --help`` lists no ``extract``, and an .npz model or ``neurocorr
extract`` names the package to install. The real command runs in a child process."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bad_input
from bad_input import listed_commands
from fault_models import run_cli

BLOCKED = {"NEUROCORR_DISABLE_PLUGINS": "arrays"}
MODELS = ["grid_models:mlp_a", "grid_models:mlp_b"]


@pytest.fixture
def folder(tmp_path):
    np.save(tmp_path / "probe.npy", np.random.default_rng(5).normal(size=(20, 64)).astype(np.float32))
    return tmp_path


def test_the_package_registers_the_provider_and_the_extract_command(pm):
    assert pm.registry["provider"]["arrays"][1] == "arrays"
    assert pm.registry["command"]["extract"][1] == "arrays"
    assert pm.provider_for({"fc": np.zeros((4, 3), np.float32)}).holds_samples


def test_without_the_package_models_compare_and_activations_name_it(folder):
    result = run_cli(["compare", *MODELS, "--probe", "probe.npy", "--quiet"], folder, **BLOCKED)
    assert result.code == 0, result.err
    assert "extract" not in listed_commands(run_cli(["--help"], folder, **BLOCKED).out)
    bad_input.assert_user_error(run_cli(["extract", MODELS[0], "--probe", "probe.npy", "--out", "a.npz"], folder,
                                    **BLOCKED), "'extract'", "neurocorr-arrays")
    np.savez(folder / "a.npz", fc=np.ones((20, 3), np.float32))
    before = bad_input.snapshot(folder)
    bad_input.assert_user_error(run_cli(["compare", "a.npz", "a.npz", "--quiet"], folder, **BLOCKED),
                                "pip install neurocorr-arrays")
    bad_input.assert_unchanged(before, bad_input.snapshot(folder))


def test_with_the_package_two_exports_compare_without_a_probe(folder):
    for name, model in (("a", MODELS[0]), ("b", MODELS[1])):
        made = run_cli(["extract", model, "--probe", "probe.npy", "--out", f"{name}.npz"], folder)
        assert made.code == 0, made.err
    direct = run_cli(["compare", *MODELS, "--probe", "probe.npy", "--quiet", "--json", "direct.json"], folder)
    exported = run_cli(["compare", "a.npz", "b.npz", "--quiet", "--json", "exported.json"], folder)
    assert direct.code == 0 and exported.code == 0, exported.err
    score = [json.loads((folder / f).read_text())["score"]["a_to_b"] for f in ("direct.json", "exported.json")]
    assert abs(score[0] - score[1]) < 1e-6
