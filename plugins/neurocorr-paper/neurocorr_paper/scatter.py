"""Score-against-quality scatter plots for studies: a network score against test or attacked
accuracy, one point per model, with the Spearman rank correlation in the title, and
:func:`place_labels`, which labels the points so that no label overlaps another or covers a point.

Moved here from ``neurocorr_core.plots``; the figure itself comes from the core's
:func:`neurocorr_core.plots.figure` (matplotlib's Agg canvas, no display), and
``neurocorr_core.plots.save`` / ``to_bytes`` write it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from neurocorr_core import NeurocorrError
from neurocorr_core.plots import figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def score_scatter(scores: Sequence[float], values: Sequence[float], *,
                  labels: Sequence[str] | None = None, errors_x: Sequence[float] | None = None,
                  errors_y: Sequence[float] | None = None, xlabel: str = "network score",
                  ylabel: str = "test accuracy", title: str = "") -> Figure:
    """Scatter of a score (x) against a measured quality such as accuracy (y), one point per
    model, optionally labelled and with error bars (e.g. the sd over seeds). The title gets the
    Spearman rank correlation of the points when there are at least three."""
    x, y = np.asarray(scores, dtype=float), np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise NeurocorrError(f"score_scatter needs two 1-d sequences of equal length, got shapes "
                             f"{x.shape} and {y.shape}")
    if labels is not None and len(labels) != len(x):
        raise NeurocorrError(f"score_scatter got {len(labels)} labels for {len(x)} points")
    fig = figure(5.2, 4.0)
    ax = fig.add_subplot()
    ax.errorbar(x, y, xerr=errors_x, yerr=errors_y, fmt="o", capsize=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    rho = _spearman(x, y)
    suffix = f"Spearman rho = {rho:.2f}" if rho is not None else ""
    ax.set_title(" — ".join(t for t in (title, suffix) if t), fontsize="medium")
    ax.grid(alpha=0.3)
    if labels:
        place_labels(ax, x, y, labels)
    return fig


#: Offsets a point's label tries, in points, nearest first: 8 directions at growing distances.
_RINGS = (7.0, 16.0, 28.0, 42.0, 60.0)
_ANGLES = np.deg2rad([45, 135, -45, -135, 0, 180, 90, -90])


def place_labels(ax: Axes, xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray, labels: Sequence[str], *,
                 fontsize: str | float = "small", avoid_px: float = 5.0,
                 colors: Sequence[Any] | None = None) -> list[Any]:
    """Label point i at (xs[i], ys[i]) so that no label's box overlaps another label or covers
    a point (a square of ``avoid_px`` pixels around each): each label tries offsets around its
    point, nearest first, and keeps the first free one (the least covered one when none is free);
    a label moved away from its point gets a leader line. Call it once the axes' limits are set
    (it draws the figure to measure text). ``colors``: each label's colour (its point's, so a
    label is told apart from a neighbour's). Returns the annotations, in the order of ``labels``."""
    fig: Any = ax.figure
    if not hasattr(fig.canvas, "get_renderer"):  # a bare Figure: measure with the Agg canvas
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.canvas.draw()  # runs the layout, so data -> pixel positions are final
    renderer = fig.canvas.get_renderer()
    centres = ax.transData.transform(np.column_stack([xs, ys]))
    taken = [(cx - avoid_px, cy - avoid_px, cx + avoid_px, cy + avoid_px) for cx, cy in centres]
    frame = ax.get_window_extent(renderer)
    placed = []
    for i, (x, y, label) in enumerate(zip(xs, ys, labels, strict=True)):
        trial = ax.annotate(label, (x, y), xytext=(0, 0), textcoords="offset points", fontsize=fontsize,
                            annotation_clip=False)
        best: tuple[float, float, float] | None = None  # (covered area, radius, angle)
        for radius, angle in ((r, float(a)) for r in _RINGS for a in _ANGLES):
            box = _try_offset(trial, renderer, radius, angle)
            cost = sum(_overlap(box, other) for other in taken) + 1e3 * _outside(box, frame)
            if best is None or cost < best[0]:
                best = (cost, radius, angle)
            if cost == 0:
                break
        assert best is not None
        taken.append(_try_offset(trial, renderer, best[1], best[2]))
        offset, ha, va = trial.get_position(), trial.get_horizontalalignment(), trial.get_verticalalignment()
        trial.remove()
        leader: dict[str, Any] = {"arrowprops": {"arrowstyle": "-", "color": "0.45", "lw": 0.6, "shrinkA": 1,
                                                 "shrinkB": 3}} if best[1] > _RINGS[0] else {}
        note = ax.annotate(label, (x, y), textcoords="offset points", xytext=offset, ha=ha, va=va,
                           fontsize=fontsize, annotation_clip=False, color=colors[i] if colors else None,
                           **leader)
        note.set_in_layout(False)  # labels never move the axes: their places were measured
        placed.append(note)
    return placed


def _try_offset(note: Any, renderer: Any, radius: float, angle: float) -> tuple[float, float, float, float]:
    dx, dy = radius * np.cos(angle), radius * np.sin(angle)
    note.set_position((dx, dy))  # offset points
    note.set_horizontalalignment("left" if dx > 1 else "right" if dx < -1 else "center")
    note.set_verticalalignment("bottom" if dy > 1 else "top" if dy < -1 else "center")
    box = note.get_window_extent(renderer)
    return box.x0, box.y0, box.x1, box.y1


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Area shared by two boxes (x0, y0, x1, y1), 0 when they only touch."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _outside(box: tuple[float, float, float, float], frame: Any) -> float:
    return max(0.0, frame.x0 - box[0]) + max(0.0, box[2] - frame.x1) + max(0.0, frame.y0 - box[1]) \
        + max(0.0, box[3] - frame.y1)


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Rank correlation with average ranks for ties; None when undefined."""
    if len(x) < 3:
        return None
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(len(v), dtype=float)
    for value in np.unique(v):  # average the ranks of ties
        tied = v == value
        ranks[tied] = ranks[tied].mean()
    return ranks
