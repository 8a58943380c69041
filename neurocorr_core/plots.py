"""Figures of a comparison: the layer x layer heatmap and the histogram of per-neuron best-match
scores. PNG or SVG. (The studies' score-against-accuracy scatter plots are in the paper plugin,
``neurocorr_paper.scatter``.)

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


def figure(width: float, height: float) -> Figure:
    """An empty ``Figure`` of ``width`` x ``height`` inches, constrained layout, on an Agg canvas
    (so text can be measured), or an error that says how to install matplotlib."""
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
    fig = figure(*_heatmap_size(len(rows), len(cols)))
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
    fig = figure(w1 + w2, max(h1, h2))
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
    fig = figure(6.4, 3.6)
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
