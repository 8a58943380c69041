"""Results people can read: summary(), the pandas tables, a short repr, the sentence on dead neurons
(its reachable maximum checked against the score computed for a perfect similarity), shape hints."""

import numpy as np
import pytest

from neurocorr_core import NeurocorrError, compare
from neurocorr_core.matching import MaxMatching
from neurocorr_core.score import full_directions
from neurocorr_core.summary import dead_sentences, highest_reachable
from numpy_models import mlp


@pytest.fixture
def result(pm):
    probe = np.random.default_rng(0).normal(size=(80, 16)).astype(np.float32)
    return compare(mlp(0, [64, 10], dead=34), mlp(1, [12, 9, 5]), probe, plugin_manager=pm)


def test_summary_repr_and_frames(result):
    text = result.summary()
    assert text.startswith("A: NumpyNet") and "score A->B" in text and "act0" in text
    assert "34 of 74 neurons of A are constant on this probe and score 0: the highest reachable score A->B is" \
        in text
    dead_sides = sum(1 for side in "ab" if sum(result.dead_neurons[side].values()))
    assert text.count("are constant on this probe") == dead_sides
    shown = repr(result)
    assert len(shown) < 400 and shown.count("\n") == 0 and f"{result.score.a_to_b:.4f}" in shown
    frame = result.layer_frame()
    assert list(frame.index) == ["act0", "act1"] and list(frame.columns) == ["act0", "act1", "act2"]
    np.testing.assert_array_equal(frame.to_numpy(), result.layer_table)
    back = result.layer_frame("b_to_a")
    assert back.index.name == "B" and back.shape == (3, 2)
    layers = result.to_pandas()
    assert layers.loc[("A", "act0"), "dead"] == 34 and len(layers) == 5


def test_the_reachable_maximum_is_the_score_of_a_perfect_similarity():
    """The naive computation: every pair of live neurons correlates 1, constant neurons NaN, scored
    through the real score path (max matching, the depth penalty); the bound must equal it."""
    rng = np.random.default_rng(3)
    for _ in range(30):
        sizes_a, sizes_b = rng.integers(1, 6, rng.integers(1, 5)), rng.integers(1, 6, rng.integers(1, 5))
        dead_a = [int(rng.integers(0, s + 1)) for s in sizes_a]
        dead_b = [int(rng.integers(0, s + 1)) for s in sizes_b]
        live_a = np.concatenate([np.arange(s) >= d for s, d in zip(sizes_a, dead_a, strict=True)])
        live_b = np.concatenate([np.arange(s) >= d for s, d in zip(sizes_b, dead_b, strict=True)])
        sim = np.where(live_a[:, None] & live_b[None, :], 1.0, np.nan)
        for penalty in ("paper", "none"):
            ab, ba = full_directions(sim.copy(), sizes_a, sizes_b, MaxMatching(), penalty, True)
            layer = lambda i, s, d: type("L", (), {"index": i, "neurons": int(s), "dead": d})()  # noqa: E731
            rows = [layer(i, s, d) for i, (s, d) in enumerate(zip(sizes_a, dead_a, strict=True))]
            cols = [layer(i, s, d) for i, (s, d) in enumerate(zip(sizes_b, dead_b, strict=True))]
            assert highest_reachable(rows, cols, penalty) == pytest.approx(ab.score, abs=1e-12)
            assert highest_reachable(cols, rows, penalty) == pytest.approx(ba.score, abs=1e-12)


def test_no_sentence_without_dead_neurons_or_for_sampled_scores(pm):
    probe = np.random.default_rng(0).normal(size=(80, 16)).astype(np.float32)
    assert dead_sentences(compare(mlp(0, [8]), mlp(1, [9]), probe, plugin_manager=pm)) == []
    sampled = compare(mlp(0, [64], dead=10), mlp(1, [9]), probe, sample_neurons=20, plugin_manager=pm)
    assert dead_sentences(sampled) == []


def test_frames_need_pandas_and_say_so(result, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(NeurocorrError, match="pip install pandas"):
        result.layer_frame()


def test_a_channels_last_probe_gets_the_layout_hint(pm):
    net = mlp(0, [4], n_in=192)
    net.input_shape = (3, 8, 8)  # NumpyNet checks the element count only: make it refuse NHWC
    run = net.run

    def strict(x):
        if x.shape[1:] != (3, 8, 8):
            raise ValueError(f"expected input[1] to have 3 channels, got {x.shape[1]}")
        return run(x.reshape(len(x), -1))

    net.run = strict
    nhwc = np.random.default_rng(0).normal(size=(10, 8, 8, 3)).astype(np.float32)
    with pytest.raises(NeurocorrError, match="looks channels-last .* layout=nhwc"):
        compare(net, mlp(1, [4], n_in=192), nhwc, plugin_manager=pm)
