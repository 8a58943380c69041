"""Figures as PNG bytes, drawn with matplotlib's Agg canvas (no display, no global pyplot state)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Panel:
    """One scatter panel: ``x[model]`` and ``y[model]`` hold one value per seed."""

    title: str
    xlabel: str
    ylabel: str
    x: dict[str, list[float]]
    y: dict[str, list[float]]


def _canvas(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, FigureCanvasAgg(fig)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def scatter(panels: Sequence[Panel], suptitle: str) -> bytes:
    """Side-by-side panels: each seed's point faint, the seed mean with +-1 sd bars, labelled."""
    return _png(scatter_figure(panels, suptitle))


def scatter_figure(panels: Sequence[Panel], suptitle: str) -> Any:
    """The figure of :func:`scatter`. Each model's label sits beside its mean, where it covers
    no other label and no other mean (close points, such as net3 and net4, get labels on
    either side, with a leader line when one had to move away)."""
    from .scatter import place_labels

    fig, _ = _canvas(5.2 * len(panels), 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colors = [f"C{i}" for i in range(10)]
    means = []
    for ax, panel in zip(axes, panels, strict=True):
        points = {}
        for k, model in enumerate(panel.x):
            xs, ys = np.asarray(panel.x[model]), np.asarray(panel.y[model])
            ax.scatter(xs, ys, s=14, alpha=0.35, color=colors[k % 10])
            ax.errorbar(xs.mean(), ys.mean(), xerr=_sd(xs), yerr=_sd(ys), fmt="o", ms=7,
                        color=colors[k % 10], capsize=3, label=model)
            points[model] = (float(xs.mean()), float(ys.mean()))
        means.append(points)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.grid(alpha=0.3)
    fig.suptitle(suptitle, fontsize=11)
    for ax, points in zip(axes, means, strict=True):  # once every panel is laid out
        place_labels(ax, [p[0] for p in points.values()], [p[1] for p in points.values()], list(points),
                     fontsize=9, colors=[colors[k % 10] for k in range(len(points))])
    return fig


def _sd(v: np.ndarray) -> float:
    return float(v.std(ddof=1)) if len(v) > 1 else 0.0


def heatmaps(matrices: Sequence[np.ndarray], labels: Sequence[str], titles: Sequence[str],
             suptitle: str) -> bytes:
    """Annotated square heatmaps, one per matrix, on a shared 0..1 colour scale."""
    fig, _ = _canvas(4.6 * len(matrices) + 0.8, 4.4)
    axes = fig.subplots(1, len(matrices), squeeze=False)[0]
    image = None
    for ax, matrix, title in zip(axes, matrices, titles, strict=True):
        image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=9)
        ax.set_yticks(range(len(labels)), labels, fontsize=9)
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                ax.text(j, i, f"{matrix[i, j]:.3f}", ha="center", va="center", fontsize=9,
                        color="black" if matrix[i, j] > 0.6 else "white")
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="symmetric score")
    fig.suptitle(suptitle, fontsize=11)
    return _png(fig)
