"""What the core checks of a metric plugin's work: every call into the plugin, and the shape,
NaN and range of what it returns, so a broken plugin is one error that names it."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from .errors import NeurocorrError, PluginError
from .interfaces import Metric

#: How far beyond :attr:`Metric.bounds` a value may lie and still count as rounding: this
#: fraction of the range (of 1 for an unbounded range). Float32 sums over many samples drift.
BOUNDS_SLACK = 1e-3
_CHECK_ENTRIES = 1 << 22  # entries per block when a similarity is checked (bounded temporaries)
_T = TypeVar("_T")


def plugin_of(cls: type) -> str:
    """Where ``cls`` comes from: the installed plugin (entry point) and package that provide its
    module, whose authors a bug goes to, and the module itself."""
    module = getattr(cls, "__module__", None) or "unknown"
    try:
        from importlib.metadata import entry_points

        from .interfaces import NAME

        for ep in entry_points(group=NAME):
            if module == ep.module or module.startswith(ep.module + "."):
                package = f", package {ep.dist.name}" if ep.dist is not None else ""
                return f"plugin {ep.name}{package}, module {module}"
    except Exception:  # broken metadata of other packages: the module name says enough
        pass
    return f"module {module}"


def _who(metric: Metric | type[Metric]) -> str:
    cls = metric if isinstance(metric, type) else type(metric)
    return f"metric {getattr(cls, 'name', cls.__name__)!r} ({plugin_of(cls)})"


_BUG = ("this is a bug in the plugin, not in your models or probe: report it to the plugin's "
        "authors, or choose another metric (--metric)")


def _blame(metric: Metric | type[Metric], problem: str, fix: str = _BUG) -> PluginError:
    return PluginError(f"{_who(metric)}: {problem}; {fix}")


def call_metric(metric: Metric | type[Metric], step: str, fn: Callable[..., _T], *args: Any,
                **kwargs: Any) -> _T:
    """``fn(*args, **kwargs)``, a call into a metric plugin (``step``: ``update``, ``merge``...).
    An exception other than :class:`NeurocorrError` (a message for the user already) becomes a
    :class:`PluginError` naming the metric, its plugin and the exception, kept as ``__cause__``."""
    try:
        return fn(*args, **kwargs)
    except (NeurocorrError, MemoryError):
        raise  # MemoryError: the data is too large, no fault of the plugin
    except Exception as exc:
        text = str(exc).strip().splitlines()
        what = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
        fix = (f"check the metric options you gave (metric_options), else {_BUG}" if step == "__init__"
               else _BUG)
        raise _blame(metric, f"{step}() raised {what}", fix) from exc


def checked_constant(metric: Metric, sizes_a: Sequence[int], sizes_b: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The constant-neuron masks of a metric built over layers of ``sizes_a`` and ``sizes_b``
    neurons, as boolean vectors: at neuron level one entry per neuron of each side (a
    layer-level metric may report none)."""
    masks = call_metric(metric, "constant", metric.constant)
    try:
        dead_a, dead_b = (np.asarray(m, dtype=bool) for m in masks)
    except (TypeError, ValueError):
        raise _blame(metric, f"constant() returned {type(masks).__name__}, not two boolean "
                             "arrays") from None
    want = (sum(sizes_a),), (sum(sizes_b),)
    if dead_a.ndim != 1 or dead_b.ndim != 1 or (metric.level == "neuron" and (dead_a.shape, dead_b.shape) != want):
        raise _blame(metric, f"constant() returned masks of shapes {dead_a.shape} and {dead_b.shape}; "
                             f"the contract is {want[0]} and {want[1]}, one entry per neuron")
    return dead_a, dead_b


def checked_similarity(metric: Metric, values: Any, sizes_a: Sequence[int], sizes_b: Sequence[int],
                       dead_a: np.ndarray, dead_b: np.ndarray) -> np.ndarray:
    """What ``metric.compute()`` returned (for layers of ``sizes_a`` and ``sizes_b`` neurons,
    constant neurons ``dead_a``, ``dead_b``), once it keeps the contract: real numbers of the
    level's shape, NaN only where :attr:`Metric.undefined` allows it, within :attr:`Metric.bounds`.
    Anything else is a :class:`PluginError` naming the metric and its plugin."""
    array = _real(metric, values, "compute()")
    if metric.level == "layer":
        shape, what = (len(sizes_a), len(sizes_b)), "one value per pair of layers"
    else:
        shape, what = (sum(sizes_a), sum(sizes_b)), "one value per pair of neurons"
    if array.shape != shape:
        raise _blame(metric, f"compute() returned an array of shape {array.shape}; the contract is "
                             f"{shape}, {what}")
    rows, cols = _undefined(metric, dead_a, dead_b, sizes_a, sizes_b)
    _check_values(metric, array, rows, cols, "compute()", anything_where_undefined=False)
    return array


def checked_tile(metric: Metric, values: Any, rows: slice, cols: slice, dead_r: np.ndarray,
                 dead_c: np.ndarray) -> np.ndarray:
    """What ``metric.tile(rows, cols)`` returned, once it keeps the contract; ``dead_r``,
    ``dead_c``: the tile's constant neurons, whose entries may hold anything (the core sets
    them to 0)."""
    array = _real(metric, values, "tile()")
    shape = (len(dead_r), len(dead_c))
    if array.shape != shape:
        raise _blame(metric, f"tile() returned a tile of shape {array.shape} for rows {rows.start}:{rows.stop} and "
                             f"columns {cols.start}:{cols.stop}; the contract is {shape}")
    _check_values(metric, array, dead_r, dead_c, "tile()", anything_where_undefined=True)
    return array


def _real(metric: Metric, values: Any, step: str) -> np.ndarray:
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise _blame(metric, f"{step} returned {type(values).__name__}, not an array ({exc})") from None
    if array.dtype.kind not in "fiub":
        raise _blame(metric, f"{step} returned {type(values).__name__} of dtype {array.dtype}; the "
                             "contract is real numbers (float64)")
    return array if array.dtype in (np.float32, np.float64) else array.astype(np.float64)


def _undefined(metric: Metric, dead_a: np.ndarray, dead_b: np.ndarray, sizes_a: Sequence[int],
               sizes_b: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of compute()'s result where NaN is allowed (for "constant")."""
    if metric.level == "neuron":
        return dead_a, dead_b
    return _layers_with(dead_a, sizes_a), _layers_with(dead_b, sizes_b)


def _layers_with(dead: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Per layer: holds a constant neuron (no layer does when the masks are not per neuron)."""
    if len(dead) != sum(sizes):
        return np.zeros(len(sizes), dtype=bool)
    bounds = np.cumsum([0, *sizes])
    return np.array([bool(dead[a:b].any()) for a, b in itertools.pairwise(bounds)], dtype=bool)


def _check_values(metric: Metric, array: np.ndarray, undefined_r: np.ndarray, undefined_c: np.ndarray,
                  step: str, *, anything_where_undefined: bool) -> None:
    """Refuse NaN outside the undefined rows/columns, any infinity, and values beyond the
    bounds; ``anything_where_undefined``: entries there are not looked at (tiles)."""
    lo, hi = _bounds(metric)
    if array.size == 0:
        return
    low, high = array.min(), array.max()  # NaN propagates: the fast path is for clean results
    if np.isfinite(low) and np.isfinite(high) and lo <= low and high <= hi:
        return
    nan_anywhere = metric.undefined == "anywhere"
    found = {"nan": 0, "inf": 0, "range": 0}
    example: tuple[int, int, float] | None = None
    step_rows = max(1, _CHECK_ENTRIES // max(1, array.shape[1]))
    for start in range(0, array.shape[0], step_rows):
        block = array[start:start + step_rows]
        allowed = undefined_r[start:start + step_rows, None] | undefined_c[None, :]
        nan, inf = np.isnan(block), np.isinf(block)
        with np.errstate(invalid="ignore"):
            bad = ~((block >= lo) & (block <= hi)) | inf
        if anything_where_undefined:
            bad &= ~allowed
        bad &= ~(nan & allowed) if not nan_anywhere else ~nan
        if not bad.any():
            continue
        found["nan"] += int((bad & nan).sum())
        found["inf"] += int((bad & inf).sum())
        found["range"] += int((bad & ~nan & ~inf).sum())
        if example is None:
            i, j = np.argwhere(bad)[0]
            example = (start + int(i), int(j), float(block[i, j]))
    if example is None:
        return
    raise _blame(metric, f"{step} returned {_problems(metric, found)} (e.g. {example[2]!r} at "
                         f"[{example[0]}, {example[1]}]), against the Metric contract: values within "
                         "Metric.bounds, NaN only where Metric.undefined allows it (default: for constant "
                         "neurons)")


def _bounds(metric: Metric) -> tuple[float, float]:
    """The declared bounds widened by the rounding slack."""
    try:
        lo, hi = (float(b) for b in metric.bounds)
    except (TypeError, ValueError):
        raise _blame(metric, f"it declares bounds {metric.bounds!r}; Metric.bounds must be (low, high)") from None
    if not lo <= hi:
        raise _blame(metric, f"it declares bounds {metric.bounds!r}; Metric.bounds must be (low, high)")
    span = hi - lo
    slack = BOUNDS_SLACK * (span if math.isfinite(span) and span > 0 else 1.0)
    return lo - slack, hi + slack


def _problems(metric: Metric, found: dict[str, int]) -> str:
    lo, hi = metric.bounds
    said = []
    if found["nan"]:
        said.append(f"{found['nan']} NaN value(s) for pairs of neurons that vary")
    if found["inf"]:
        said.append(f"{found['inf']} infinite value(s)")
    if found["range"]:
        said.append(f"{found['range']} value(s) outside its declared range [{lo:g}, {hi:g}]")
    return " and ".join(said)
