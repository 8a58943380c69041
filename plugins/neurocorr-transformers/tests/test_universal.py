"""The universal-neurons experiment: its per-neuron max correlations (from compare()) against a naive
numpy reference, the rotated baseline's model surgery, the summary arithmetic, the command, and two
fine-tunes of one base against two unrelated models with a permutation p-value."""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tiny
from neurocorr_core import NeurocorrError, compare
from neurocorr_transformers import HFModel, UniversalNeuronsCommand
from neurocorr_transformers.lm import (
    LMSize,
    build_lm,
    sequence_probe,
    stdlib_docstrings,
    token_stream,
    train_lm,
    train_tokenizer,
)
from neurocorr_transformers.rotation import rotate_mlp_neurons
from neurocorr_transformers.universal import GURNEE, summarize

SIZE = LMSize(layers=2, width=32, heads=2, context=16, vocab=tiny.VOCAB)


def _mlp_acts(model: Any, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Every block's MLP activation at the real tokens, (tokens, layers x neurons), by torch hooks
    on the modules themselves (not the provider's)."""
    import torch

    got: list[Any] = []
    handles = [b.mlp.act.register_forward_hook(lambda _m, _i, out: got.append(out)) for b in model.transformer.h]
    with torch.no_grad():
        model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    for h in handles:
        h.remove()
    real = mask.astype(bool)
    return np.concatenate([g.numpy()[real] for g in got], axis=1).astype(np.float64)


def _naive_max_r(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each column of x: its largest Pearson r with any column of y (np.corrcoef)."""
    r = np.corrcoef(x, y, rowvar=False)[: x.shape[1], x.shape[1]:]
    return r.max(axis=1)


def test_max_corr_and_baseline_equal_a_naive_reference() -> None:
    """compare() with GURNEE's options gives, per neuron of A, max_j r(i, j) over all of B's MLP
    neurons in every layer, over the real tokens only, equal to np.corrcoef on the gathered tokens."""
    a, b = build_lm(SIZE, 0), build_lm(SIZE, 1)
    rotated, rotations = rotate_mlp_neurons(b, seed=5)
    ids, mask = tiny.padded(24, SIZE.context, seed=3)
    from neurocorr_transformers import token_probe

    probe = token_probe(ids, mask)
    xa, xb = _mlp_acts(a, ids, mask), _mlp_acts(b, ids, mask)
    result = compare(HFModel(a), HFModel(b), probe, batch_size=7, **GURNEE)
    np.testing.assert_allclose(result.value_a, _naive_max_r(xa, xb), atol=1e-5)
    np.testing.assert_allclose(result.value_b, _naive_max_r(xb, xa), atol=1e-5)
    # the rotated model's neurons are the original ones mixed by each block's rotation
    n = SIZE.width * 4
    mixed = np.concatenate([xb[:, i * n:(i + 1) * n] @ r.T for i, r in enumerate(rotations)], axis=1)
    np.testing.assert_allclose(_mlp_acts(rotated, ids, mask), mixed, atol=1e-4)
    base = compare(HFModel(a), HFModel(rotated), probe, **GURNEE)
    np.testing.assert_allclose(base.value_a, _naive_max_r(xa, mixed), atol=1e-4)


def test_rotation_keeps_the_function() -> None:
    import torch

    model = build_lm(SIZE, 2)
    rotated, rotations = rotate_mlp_neurons(model, seed=0)
    for r in rotations:
        np.testing.assert_allclose(r @ r.T, np.eye(len(r)), atol=1e-10)
    x = torch.from_numpy(tiny.padded(4, SIZE.context, seed=1)[0])
    with torch.no_grad():
        np.testing.assert_allclose(rotated(input_ids=x).logits.numpy(), model(input_ids=x).logits.numpy(), atol=1e-4)
    assert type(model.transformer.h[0].mlp.act).__name__ != "RotatedActivation"  # the original is untouched
    with pytest.raises(NeurocorrError, match="takes a GPT-2"):
        rotate_mlp_neurons(tiny.bert(0), seed=0)


def test_summary_by_hand() -> None:
    """Two layers of 2 neurons, 3 seeds: shares of neurons with excess > 0.5, per pair and by rho."""
    seeds = range(3)
    max_corr = {(a, b): np.array([0.9, 0.2, 0.8, 0.6]) for a in seeds for b in seeds if a != b}
    baseline = {(a, b): np.array([0.3, 0.1, 0.2, 0.2]) for a in seeds for b in seeds if a != b}
    max_corr[0, 1] = np.array([0.9, 0.2, 0.8, 0.9])  # neuron 3 of seed 0: excess 0.7 with seed 1, 0.4 with seed 2
    out = summarize(max_corr, baseline, {(0, 1): 0.5, (0, 2): 0.7, (1, 2): 0.6}, [2, 2], 0.5)
    first, second = out["layers"]
    assert first["universal_pct_pairs"] == pytest.approx({"mean": 50.0, "min": 50.0, "max": 50.0})
    assert second["universal_pct_pairs"] == pytest.approx({"mean": 100 * 7 / 12, "min": 50.0, "max": 100.0})
    # rho of neuron 3 of seed 0 = (0.7 + 0.4) / 2 = 0.55 > 0.5; of the other seeds 0.4
    assert second["universal_pct_gurnee"] == pytest.approx({"mean": 200 / 3, "min": 50.0, "max": 100.0})
    assert out["network_score"]["mean"] == pytest.approx(0.6)
    assert first["max_corr"] == pytest.approx(0.55) and first["baseline"] == pytest.approx(0.2)
    assert first["excess_mean"] == pytest.approx(0.35)
    assert second["excess_mean"] == pytest.approx((0.6 + 0.55 + 0.6 + 0.4 + 0.6 + 0.4) / 6)


def test_command_errors() -> None:
    command = UniversalNeuronsCommand()
    args = argparse.Namespace(quick=True, seeds=1, steps=None, threads=None, out=None, layers=None, width=None)
    with pytest.raises(NeurocorrError, match="at least 2 models"):
        command.run(args)
    with pytest.raises(NeurocorrError, match="positive number of training steps"):
        command.run(argparse.Namespace(**{**vars(args), "seeds": 3, "steps": 0}))


def test_two_finetunes_of_one_base_score_above_two_unrelated_models() -> None:
    """A base trained briefly, then fine-tuned on two tasks (two halves of the corpus): the two
    fine-tunes share most of their neurons; two models trained from scratch from other seeds with
    the same budget share less. Both scores come with a permutation p-value."""
    texts = stdlib_docstrings(60_000)
    tokenizer = train_tokenizer(texts[::2], 256)
    first, second = token_stream(tokenizer, texts[:len(texts) // 2]), token_stream(tokenizer, texts[len(texts) // 2:])
    size = LMSize(layers=2, width=32, heads=2, context=32, vocab=len(tokenizer))
    base = build_lm(size, 0)
    train_lm(base, np.concatenate([first, second]), steps=60, seed=0, batch=8)
    tuned = []
    for seed, stream in ((1, first), (2, second)):
        model = copy.deepcopy(base)
        train_lm(model, stream, steps=40, seed=seed, batch=8, lr=5e-4)  # a fine-tune: a smaller rate
        tuned.append(model)
    unrelated = []
    for seed in (3, 4):
        model = build_lm(size, seed)
        train_lm(model, np.concatenate([first, second]), steps=100, seed=seed, batch=8)
        unrelated.append(model)
    probe = sequence_probe(tokenizer, texts[1::2][:40], size.context)
    options = {"neurons": "token", "layers_a": "block*.mlp.act", "layers_b": "block*.mlp.act", "permutations": 49}
    ft = compare(HFModel(tuned[0]), HFModel(tuned[1]), probe, **options)
    other = compare(HFModel(unrelated[0]), HFModel(unrelated[1]), probe, **options)
    print(f"fine-tunes {ft.score.symmetric:.4f} (p {ft.significance.p_value}, z {ft.significance.z:.1f}); "  # type: ignore[union-attr]
          f"unrelated {other.score.symmetric:.4f} (p {other.significance.p_value}, z {other.significance.z:.1f})")  # type: ignore[union-attr]
    assert ft.score.symmetric > other.score.symmetric + 0.1, (ft.score, other.score)
    assert ft.significance is not None and other.significance is not None
    assert ft.significance.p_value == pytest.approx(1 / 50)  # above every one of the 49 shuffles
    assert ft.significance.z is not None and ft.significance.z > other.significance.z  # type: ignore[operator]


@pytest.mark.slow
def test_quick_run_of_the_command(tmp_path: Path) -> None:
    """``neurocorr universal-neurons --quick`` end to end (about a minute on 2 cores)."""
    done = subprocess.run([sys.executable, "-m", "neurocorr_core.cli", "universal-neurons", "--quick", "--threads",
                           "1", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "results.json").read_text())
    assert [layer["layer"] for layer in result["layers"]] == ["block0.mlp.act", "block1.mlp.act"]
    assert all(layer["neurons"] == 256 for layer in result["layers"])
    for layer in result["layers"]:
        assert 0 < layer["baseline"] < 1 and 0 < layer["max_corr"] <= 1
        for key in ("universal_pct_pairs", "universal_pct_gurnee"):
            spread = layer[key]
            assert 0 <= spread["min"] <= spread["mean"] <= spread["max"] <= 100
    assert len(result["network_score"]["pairs"]) == 3 and 0 < result["network_score"]["mean"] <= 1
    assert result["losses"][0]["probe_loss"] < np.log(result["setting"]["size"]["vocab"])  # it learned something
    assert "| block1.mlp.act | 256 |" in (tmp_path / "table.md").read_text()
