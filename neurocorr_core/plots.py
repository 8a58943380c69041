"""Figures of a comparison: the layer x layer heatmap, the histogram of per-neuron best-match
scores, and a score-against-accuracy scatter plot. PNG or SVG.

matplotlib is an optional dependency (``pip install "neurocorr-core[plots]"``); it is imported
only when a figure is drawn, with the non-interactive Agg backend, so nothing here needs a display.
Every function returns a matplotlib ``Figure``; :func:`save` writes it atomically and
:func:`to_bytes` renders it in memory (the HTML report embeds those bytes).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import NeurocorrError
from .files import write_atomic
from .result import Comparison

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Image formats :func:`save` and :func:`to_bytes` write, by file suffix.
FORMATS = ("png", "svg")
INSTALL_HINT = 'pip install "neurocorr-core[plots]"  (or: pip install matplotlib)'
#: Above this many cells a heatmap does not print its values in the cells.
_ANNOTATE_MAX_CELLS = 144


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or an error that says how to install it."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        raise NeurocorrError(f"plots need matplotlib, which is not installed; install it with: "
                             f"{INSTALL_HINT}") from None
    matplotlib.use("Agg", force=True)  # never open a window, work without a display
    return importlib.import_module("matplotlib.pyplot")


def _figure(width: float, height: float) -> Figure:
    # A Figure not registered with pyplot's state machine: nothing to close, no leaks in loops.
    _pyplot()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # a canvas that measures text (labels are placed by their extents)
    return fig


def short(label: str, width: int = 28) -> str:
    """``label`` cut in the middle to at most ``width`` characters (long ONNX tensor names)."""
    if len(label) <= width:
        return label
    keep = width - 1
    return f"{label[:keep // 2]}…{label[len(label) - (keep - keep // 2):]}"


def _limits(table: np.ndarray) -> tuple[float, float]:
    """Colour range: [0, 1] for similarities, widened to [-1, 1] or beyond only when needed."""
    finite = table[np.isfinite(table)]
    if finite.size == 0:
        return 0.0, 1.0
    low = 0.0 if finite.min() >= 0 else min(-1.0, float(finite.min()))
    return low, max(1.0, float(finite.max()))


def table_of(result: Comparison, direction: str = "a_to_b") -> tuple[np.ndarray, list[str], list[str]]:
    """The layer table of one direction with its row and column layer names.

    ``a_to_b``: rows are A's layers, columns B's, cell (i, j) the mean best-match score of the
    neurons of A's layer i within B's layer j; ``b_to_a`` the same from B to A.
    """
    names_a = [lr.info.name for lr in result.layers_a]
    names_b = [lr.info.name for lr in result.layers_b]
    if direction == "a_to_b":
        return np.asarray(result.layer_table, dtype=float), names_a, names_b
    if direction == "b_to_a":
        return np.asarray(result.layer_table_ba, dtype=float), names_b, names_a
    raise NeurocorrError(f"direction must be 'a_to_b' or 'b_to_a', not {direction!r}")


def metric_level(result: Comparison) -> str:
    """``"layer"`` when the result's metric compares whole layers (its table holds the metric's
    own values), else ``"neuron"`` (the table holds mean best-match scores)."""
    level = result.config.get("level")
    if isinstance(level, str):
        return level
    try:
        from .plugins import get_plugin_manager

        return str(get_plugin_manager().metric(str(result.config.get("metric"))).level)
    except Exception:  # a metric that is not installed here: the common case
        return "neuron"


def is_symmetric(result: Comparison) -> bool:
    """True when the B -> A table is the A -> B one transposed (a layer-level metric such as CKA):
    one heatmap says it all."""
    ab, ba = table_of(result, "a_to_b")[0], table_of(result, "b_to_a")[0]
    return (metric_level(result) == "layer" and ba.shape == ab.T.shape
            and bool(np.allclose(ba, ab.T, atol=1e-6, equal_nan=True)))


def _metric_label(result: Comparison) -> str:
    metric = result.config.get("metric", "similarity")
    matching = result.config.get("matching")
    if metric_level(result) == "layer" or not matching:
        return str(metric)
    return f"{metric}, mean best match ({matching})"


def draw_heatmap(ax: Axes, table: np.ndarray, rows: Sequence[str], cols: Sequence[str], *,
                 title: str = "", row_label: str = "", col_label: str = "", colorbar: str = "") -> None:
    """Draw ``table`` (rows, cols) on ``ax`` with ``imshow``, labelled ticks and a colour bar.

    The plotted matrix is ``ax.images[0].get_array()``, the table itself (NaN masked).
    """
    table = np.asarray(table, dtype=float)
    if table.shape != (len(rows), len(cols)):
        raise NeurocorrError(f"heatmap table has shape {table.shape} but {len(rows)} row and "
                             f"{len(cols)} column labels were given")
    low, high = _limits(table)
    image = ax.imshow(np.ma.masked_invalid(table), cmap="viridis", vmin=low, vmax=high,
                      aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(cols)), [short(c) for c in cols], rotation=60, ha="right",
                  rotation_mode="anchor")
    ax.set_yticks(range(len(rows)), [short(r) for r in rows])
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    ax.set_title(title, fontsize="medium")
    if table.size <= _ANNOTATE_MAX_CELLS:
        middle = (low + high) / 2
        for (i, j), value in np.ndenumerate(table):
            text = "-" if not np.isfinite(value) else f"{value:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize="x-small",
                    color="black" if np.isfinite(value) and value > middle else "white")
    bar = ax.figure.colorbar(image, ax=ax, shrink=0.9)
    bar.set_label(colorbar)


def heatmap(result: Comparison, direction: str = "a_to_b") -> Figure:
    """The layer x layer heatmap of one direction of ``result`` (see :func:`table_of`).

    Axes are labelled with the layer names, the title names both models, the colour bar the
    metric. The figure's single image holds the table: ``fig.axes[0].images[0].get_array()``.
    """
    table, rows, cols = table_of(result, direction)
    row_model, col_model = ((result.model_a, result.model_b) if direction == "a_to_b"
                            else (result.model_b, result.model_a))
    arrow = "A → B" if direction == "a_to_b" else "B → A"
    title = f"{arrow}: {short(row_model, 40)} → {short(col_model, 40)}"
    if is_symmetric(result):  # one matrix for both directions: no arrow
        title = f"A: {short(row_model, 40)}   B: {short(col_model, 40)}"
    fig = _figure(*_heatmap_size(len(rows), len(cols)))
    draw_heatmap(fig.add_subplot(), table, rows, cols, title=title,
                 row_label=f"layers of {short(row_model, 40)}", col_label=f"layers of {short(col_model, 40)}",
                 colorbar=_metric_label(result))
    return fig


def heatmaps(result: Comparison) -> Figure:
    """Both directions side by side: A -> B on the left, B -> A on the right; one heatmap (A -> B)
    when the metric is symmetric (:func:`is_symmetric`)."""
    if is_symmetric(result):
        return heatmap(result, "a_to_b")
    (ab, ra, cb), (ba, rb, ca) = table_of(result, "a_to_b"), table_of(result, "b_to_a")
    w1, h1 = _heatmap_size(len(ra), len(cb))
    w2, h2 = _heatmap_size(len(rb), len(ca))
    fig = _figure(w1 + w2, max(h1, h2))
    left, right = fig.subplots(1, 2)
    label = _metric_label(result)
    a, b = short(result.model_a, 40), short(result.model_b, 40)
    draw_heatmap(left, ab, ra, cb, title=f"A → B: {a} → {b}", row_label="layers of A",
                 col_label="layers of B", colorbar=label)
    draw_heatmap(right, ba, rb, ca, title=f"B → A: {b} → {a}", row_label="layers of B",
                 col_label="layers of A", colorbar=label)
    return fig


def _heatmap_size(rows: int, cols: int) -> tuple[float, float]:
    # Inches: room for the cells plus rotated tick labels and the colour bar; bounded both ways.
    return min(4.0 + 0.45 * cols, 16.0), min(3.2 + 0.4 * rows, 14.0)


def neuron_histogram(scores: Mapping[str, np.ndarray | Sequence[float]], *, title: str = "",
                     xlabel: str = "best-match score", bins: int = 40) -> Figure:
    """Histogram of per-neuron best-match scores, one translucent series per entry of
    ``scores`` (e.g. ``{"A → B": scores_a, "B → A": scores_b}``, each of shape (neurons,)).
    Non-finite values are left out; the legend gives each series' neuron count and mean."""
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot()
    edges = np.linspace(*_histogram_range(scores), bins + 1)
    for label, values in scores.items():
        arr = np.asarray(values, dtype=float).ravel()
        arr = arr[np.isfinite(arr)]
        mean = f"{arr.mean():.3f}" if arr.size else "n/a"
        ax.hist(arr, bins=list(edges), alpha=0.6, label=f"{label} ({arr.size} neurons, mean {mean})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("neurons")
    ax.set_title(title, fontsize="medium")
    if scores:
        ax.legend(fontsize="small")
    return fig


def _histogram_range(scores: Mapping[str, Any]) -> tuple[float, float]:
    values = [np.asarray(v, dtype=float).ravel() for v in scores.values()]
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    low, high = _limits(finite)
    return low, high


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
    fig = _figure(5.2, 4.0)
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


def _format(path: Path, fmt: str | None) -> str:
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise NeurocorrError(f"cannot write a figure as {path.name!r}: the format must be one of "
                             f"{', '.join(FORMATS)} (name the file .png or .svg)")
    return fmt


def to_bytes(fig: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    """The figure rendered as PNG or SVG bytes."""
    import io

    fmt = _format(Path(f"figure.{fmt}"), fmt)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi, metadata=_metadata(fmt))
    return buffer.getvalue()


def _metadata(fmt: str) -> dict[str, Any]:
    # Drop the creation date so the same comparison gives the same file.
    return {"Date": None} if fmt == "svg" else {}


def save(fig: Figure, path: str | os.PathLike[str], fmt: str | None = None, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix, ``.png`` or ``.svg``) atomically:
    rendered in memory first, so a failure leaves no half-written image."""
    target = Path(path)
    write_atomic(target, to_bytes(fig, _format(target, fmt), dpi))
    return target
