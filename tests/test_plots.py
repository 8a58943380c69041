"""Plots: what is drawn is read back from the figure's artists, never from pixels."""

import sys

import numpy as np
import pytest

from neurocorr_core import NeurocorrError, compare
from numpy_models import cnn, mlp

plots = pytest.importorskip("neurocorr_core.plots")
pytest.importorskip("matplotlib", reason="plots need matplotlib: pip install 'neurocorr-core[plots]'")


def probe(n=150, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 16)).astype(np.float32)


@pytest.fixture
def self_result(pm):
    net = mlp(3, [12, 9, 7])  # no dead units: every layer matches itself perfectly
    return compare(net, net, probe(), layers_a="kind:activation", layers_b="kind:activation",
                   plugin_manager=pm)


@pytest.fixture
def pair_result(pm):
    return compare(mlp(0, [12, 8, 6], dead=2), mlp(1, [10, 10]), probe(), layers_a="*", layers_b="*",
                   plugin_manager=pm)


def plotted(fig, index=0):
    """The matrix the heatmap's image holds (NaN where masked)."""
    return np.ma.filled(np.ma.asarray(fig.axes[index].images[0].get_array(), dtype=float), np.nan)


@pytest.mark.parametrize("direction", ["a_to_b", "b_to_a"])
def test_self_comparison_heatmap_has_its_maximum_on_the_diagonal(self_result, direction):
    fig = plots.heatmap(self_result, direction)
    matrix = plotted(fig)
    assert matrix.shape == (3, 3)
    assert (matrix.argmax(axis=1) == np.arange(3)).all(), matrix
    assert (matrix.argmax(axis=0) == np.arange(3)).all(), matrix
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-6)
    off = matrix[~np.eye(3, dtype=bool)]
    assert (off < 1 - 1e-3).all(), "another layer must not match as well as the layer itself"


def test_heatmap_draws_the_layer_table_with_names_title_and_colour_bar(pair_result):
    fig = plots.heatmap(pair_result)
    ax = fig.axes[0]
    np.testing.assert_array_equal(plotted(fig), pair_result.layer_table)
    assert [t.get_text() for t in ax.get_yticklabels()] == [lr.info.name for lr in pair_result.layers_a]
    assert [t.get_text() for t in ax.get_xticklabels()] == [lr.info.name for lr in pair_result.layers_b]
    assert pair_result.model_a in ax.get_title() and pair_result.model_b in ax.get_title()
    assert len(fig.axes) == 2, "the heatmap and its colour bar"
    assert "pearson" in fig.axes[1].get_ylabel()
    cells = [t.get_text() for t in ax.texts]  # small tables print their values
    assert cells[0] == f"{pair_result.layer_table[0, 0]:.2f}" and len(cells) == pair_result.layer_table.size


def test_both_directions_side_by_side(pair_result):
    fig = plots.heatmaps(pair_result)
    np.testing.assert_array_equal(plotted(fig, 0), pair_result.layer_table)
    np.testing.assert_array_equal(plotted(fig, 1), pair_result.layer_table_ba)
    assert fig.axes[1].get_title().startswith("B → A")


def test_nan_cells_are_masked_and_long_names_shortened():
    table = np.array([[0.5, np.nan], [1.0, 0.2]])
    fig = plots.figure(4, 3)
    ax = fig.add_subplot()
    name = "/encoder/block_7/depthwise_conv/Relu_output_0_and_more"
    plots.draw_heatmap(ax, table, ["r0", name], ["c0", "c1"])
    assert np.ma.is_masked(ax.images[0].get_array()[0, 1])
    label = ax.get_yticklabels()[1].get_text()
    assert len(label) <= 28 and label.startswith("/encoder") and label.endswith("_more")
    with pytest.raises(NeurocorrError, match=r"shape \(2, 2\) but 1 row and 2 column labels"):
        plots.draw_heatmap(ax, table, ["r0"], ["c0", "c1"])


def test_colour_range_widens_for_signed_scores():
    assert plots._limits(np.array([0.1, 0.9])) == (0.0, 1.0)
    assert plots._limits(np.array([-0.4, 0.9])) == (-1.0, 1.0)
    assert plots._limits(np.array([np.nan])) == (0.0, 1.0)


def test_neuron_histogram_counts_every_finite_score():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0, 1, 37), np.append(rng.uniform(0, 1, 20), np.nan)
    fig = plots.neuron_histogram({"A → B": a, "B → A": b}, bins=10)
    ax = fig.axes[0]
    heights = [sum(p.get_height() for p in container) for container in ax.containers]
    assert heights == [37, 20]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == f"A → B (37 neurons, mean {a.mean():.3f})"


@pytest.mark.parametrize(("suffix", "magic"), [("png", b"\x89PNG\r\n\x1a\n"), ("svg", b"<?xml")])
def test_save_png_and_svg(pm, tmp_path, suffix, magic):
    result = compare(cnn(0), cnn(1), np.random.default_rng(0).normal(size=(40, 1, 8, 8)).astype(np.float32),
                     plugin_manager=pm)
    path = plots.save(plots.heatmaps(result), tmp_path / f"h.{suffix}")
    data = path.read_bytes()
    assert data.startswith(magic) and len(data) > 2000
    if suffix == "svg":
        assert b"<svg" in data and b"act0" in data  # text stays text in the SVG
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"h.{suffix}"]  # no temporary left


def test_unknown_format_is_refused(tmp_path, pair_result):
    with pytest.raises(NeurocorrError, match=r"one of png, svg \(name the file .png or .svg\)"):
        plots.save(plots.heatmap(pair_result), tmp_path / "h.jpg")
    assert list(tmp_path.iterdir()) == []


def test_missing_matplotlib_says_how_to_install(monkeypatch, pair_result):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(NeurocorrError, match=r"plots need matplotlib.*neurocorr-core\[plots\]"):
        plots.heatmap(pair_result)
