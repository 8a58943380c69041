"""Score-against-quality scatter plots (neurocorr_paper.scatter): what is drawn is read back from
the figure's artists, never from pixels; labels never overlap (matplotlib's text extents)."""

import numpy as np
import pytest

from label_overlap import label_clashes
from neurocorr_core import NeurocorrError

pytest.importorskip("matplotlib", reason="plots need matplotlib: pip install 'neurocorr-core[plots]'")

from neurocorr_paper import scatter


def test_score_scatter_places_every_model_and_reports_spearman():
    from scipy.stats import spearmanr

    scores, acc = [0.92, 0.90, 0.93, 0.89, 0.56], [0.962, 0.964, 0.960, 0.962, 0.932]
    names = ["net1", "net2", "net3", "net4", "net5"]
    fig = scatter.score_scatter(scores, acc, labels=names, errors_y=[0.01] * 5)
    ax = fig.axes[0]
    x, y = ax.lines[0].get_data()
    np.testing.assert_array_equal(x, scores)
    np.testing.assert_array_equal(y, acc)
    assert [t.get_text() for t in ax.texts] == names
    rho = spearmanr(scores, acc).statistic
    assert f"Spearman rho = {rho:.2f}" in ax.get_title()
    with pytest.raises(NeurocorrError, match="equal length"):
        scatter.score_scatter([1, 2], [1, 2, 3])
    with pytest.raises(NeurocorrError, match="2 labels for 3 points"):
        scatter.score_scatter([1, 2, 3], [1, 2, 3], labels=["a", "b"])


# -- labels never overlap (label_overlap.label_clashes) -----------------------------------------
#: The paper's MNIST FC->CNN scores and accuracies (net3 and net4 sit 0.0007 apart in accuracy).
PAPER_SCORES = [0.9212, 0.9053, 0.9300, 0.8931, 0.5620]
PAPER_ACCURACY = [0.9621, 0.9639, 0.9595, 0.9620, 0.9321]


def test_scatter_labels_of_close_points_do_not_overlap():
    names = ["net1", "net2", "net3", "net4", "net5"]
    fig = scatter.score_scatter([0.930, 0.9305, 0.931, 0.9302, 0.56], [0.9597, 0.9598, 0.9595, 0.9596, 0.932],
                                labels=names)
    assert label_clashes(fig) == []
    assert sorted(t.get_text() for t in fig.axes[0].texts) == names
    fig = scatter.score_scatter(PAPER_SCORES, PAPER_ACCURACY, labels=names)
    assert label_clashes(fig) == []


def test_a_label_moved_away_from_its_point_gets_a_leader_line():
    names = [f"model{i}" for i in range(10)]  # ten labels around one spot: some must move away
    fig = scatter.score_scatter([0.5] * 10 + [0.0, 1.0], [0.5 + 1e-5 * i for i in range(10)] + [0.0, 1.0],
                                labels=[*names, "lo", "hi"])
    assert label_clashes(fig) == []
    assert any(t.arrow_patch is not None for t in fig.axes[0].texts)


def test_the_clash_check_catches_overlapping_labels():
    fig = scatter.score_scatter([0.1, 0.9], [0.1, 0.9])
    ax = fig.axes[0]
    for label in ("net3", "net4"):  # the old fixed offset: both labels in one place
        ax.annotate(label, (0.5, 0.5), textcoords="offset points", xytext=(4, 4))
    assert label_clashes(fig) == ["net3 overlaps net4"]
