"""The contracts plugins implement: activation providers, metrics, matching strategies."""

from __future__ import annotations

import inspect
import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np

from .errors import NeurocorrError, PluginError

#: Layer kinds shared by every framework, so one selector (``kind:activation``) picks the
#: same layers of a model and of its export. ``LayerInfo.op`` keeps the framework's own name.
KINDS = ("conv", "dense", "activation", "pool", "norm", "other")

_ACTIVATIONS = {"relu", "relu6", "gelu", "silu", "swish", "sigmoid", "tanh", "leakyrelu", "elu",
                "selu", "celu", "softplus", "softsign", "hardswish", "hardsigmoid", "mish",
                "prelu", "hardtanh", "activation", "memoryefficientswish"}


def call_name(name: str, call: int) -> str:
    """The layer name of the ``call``-th call (from 0) of a layer or module called several times in
    one forward pass: ``act``, ``act#1``, ... (every provider names shared layers alike)."""
    return name if call == 0 else f"{name}#{call}"


def kind_of(op: str) -> str:
    """The shared kind of a framework op name: ``Conv2d``/``Conv2D``/``Conv`` -> ``conv``."""
    low = op.lower().replace("_", "")
    if low in _ACTIVATIONS:
        return "activation"
    for prefix, kind in (("conv", "conv"), ("linear", "dense"), ("dense", "dense"),
                         ("gemm", "dense"), ("matmul", "dense")):
        if low.startswith(prefix):
            return kind
    if "pool" in low:
        return "pool"
    if "norm" in low:
        return "norm"
    return "other"


@dataclass(frozen=True)
class LayerInfo:
    """One capturable layer of a model.

    ``shape`` is the per-sample output shape, channels-first for conv outputs (C, H, W);
    ``depth`` is the layer's position in forward (topological) order, 0 nearest the input;
    ``kind`` is one of :data:`KINDS`; ``op`` is the framework's own type name (``ReLU``).
    """

    name: str
    shape: tuple[int, ...]
    depth: int
    kind: str = "other"
    op: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "depth": self.depth,
                "kind": self.kind, "op": self.op}


class ActivationProvider(ABC):
    """Runs one model of one framework and hands back its layer outputs as numpy arrays.

    Subclasses set ``name`` and implement :meth:`accepts`, :meth:`layers` and
    :meth:`activations`. The constructor takes the model (whatever ``accepts`` said yes to)
    and keyword options, each a named parameter of a constructor in the class hierarchy: what
    reaches this base constructor unused is refused (but ``trust_pickle``, which reaches every
    provider); it should fail with :class:`neurocorr_core.NeurocorrError` for a model it
    cannot load.
    """

    name: ClassVar[str]
    #: A one-line description of what the provider accepts, used in error messages.
    handles: ClassVar[str] = ""
    #: True if :meth:`activations` takes ``channel_means=True`` and then yields, for every
    #: output with spatial axes (batch, C, *spatial), its per-channel mean (batch, C), computed
    #: inside the framework. The ``channel`` view then never copies whole feature maps out.
    channel_means: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def accepts(cls, model: object) -> bool:
        """True if this provider can load ``model`` (an object or a path). Must not import
        a framework that is not already imported unless ``model`` is a file it owns."""

    def __init__(self, model: object, **options: Any) -> None:
        _refuse_unknown(type(self), options)
        self.model = model
        self.options = options

    @abstractmethod
    def layers(self, sample: np.ndarray) -> list[LayerInfo]:
        """All capturable layers, in forward order, found by running ``sample``
        (a canonical probe batch, NCHW or (N, features))."""

    @abstractmethod
    def activations(
        self, batches: Iterable[np.ndarray], layers: Sequence[str]
    ) -> Iterator[dict[str, np.ndarray]]:
        """For each probe batch, yield ``{layer name: float32 array (batch, *shape)}`` for
        the requested layers, channels-first, computed in inference mode. A class that sets
        :attr:`channel_means` adds a keyword ``channel_means: bool = False``; with it true,
        outputs with spatial axes come back as their per-channel means, (batch, C)."""

    def close(self) -> None:  # noqa: B027 - optional hook for providers holding resources
        """Release what the provider holds (sessions, hooks)."""

    def fingerprint(self) -> str | None:
        """A digest of what decides the model's outputs (weights, graph), the activation cache's
        model key; optional. None (the default): the core hashes a model file's bytes or a
        ``module:callable`` reference and its module's source itself, and does not cache an
        in-memory model (see :mod:`neurocorr_core.cache`)."""
        return None


def _refuse_unknown(cls: type, options: dict[str, Any]) -> None:
    """Options no constructor of ``cls`` took (``trust_pickle`` goes to every provider: one that
    loads no pickles ignores it) are a user's mistake: say which, and what the provider takes."""
    unknown = sorted(set(options) - {"trust_pickle"})
    if unknown:
        named = set().union(*(_parameters(c) for c in cls.__mro__ if "__init__" in vars(c))) - {"trust_pickle"}
        raise NeurocorrError(f"provider {getattr(cls, 'name', cls.__name__)!r} has no option(s) "
                             f"{', '.join(unknown)}; the options it takes: {', '.join(sorted(named)) or 'none'}")


def _parameters(cls: type) -> set[str]:
    params = inspect.signature(vars(cls)["__init__"]).parameters.values()
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - {"self", "model"}


class Metric(ABC):
    """A streaming similarity between the neurons of model A and model B.

    The core builds one metric per comparison with the neuron counts of every selected
    layer of each model, calls :meth:`update` once per probe batch with the concatenated
    neurons of all those layers, may :meth:`merge` metrics built over other probe shards,
    and finally calls :meth:`compute`. Like torchmetrics, state lives in the object and
    ``compute`` does not consume it.
    """

    name: ClassVar[str]
    #: ``"neuron"``: compute() returns (n_a, n_b); ``"layer"``: (layers_a, layers_b).
    level: ClassVar[Literal["neuron", "layer"]] = "neuron"
    #: The closed range of every defined value of :meth:`compute` and :meth:`tile`. The core
    #: refuses a value beyond it (more than rounding: :data:`BOUNDS_SLACK`) as a bug of the plugin.
    #: The default suits correlations and CKA; a metric on another scale declares its own, e.g.
    #: ``bounds = (0.0, math.inf)``. Infinite values are never accepted.
    bounds: ClassVar[tuple[float, float]] = (-1.0, 1.0)
    #: Where :meth:`compute` may hold NaN (an undefined similarity, scored 0). ``"constant"``
    #: (default): only for pairs with a neuron that :meth:`constant` marks (at layer level: a
    #: layer holding such a neuron). ``"anywhere"``: wherever the metric documents it (e.g. an
    #: unbiased estimate that is not positive on few samples). Any other NaN is refused.
    undefined: ClassVar[Literal["constant", "anywhere"]] = "constant"

    def __init__(self, sizes_a: Sequence[int], sizes_b: Sequence[int], **options: Any) -> None:
        self.sizes_a = tuple(int(s) for s in sizes_a)
        self.sizes_b = tuple(int(s) for s in sizes_b)
        self.options = options

    @abstractmethod
    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        """Accumulate one batch: ``x`` (batch, sum(sizes_a)), ``y`` (batch, sum(sizes_b))."""

    @abstractmethod
    def merge(self, other: Metric) -> None:
        """Fold in a metric of the same kind and sizes accumulated over other samples."""

    @abstractmethod
    def compute(self) -> np.ndarray:
        """The similarity, float64, NaN where it is undefined (a constant neuron)."""

    @abstractmethod
    def constant(self) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks (n_a,), (n_b,) of neurons constant over the samples seen (dead)."""

    @property
    def count(self) -> int:
        """Number of samples accumulated so far."""
        return 0

    # -- optional capability: similarity in tiles, for layers too wide to hold (n_a, n_b) ----
    #: True if the metric accepts the constructor options ``tiled=True, samples=N``: it then
    #: keeps state of :meth:`tiled_state_bytes` bytes (never O(n_a * n_b)) and serves the
    #: similarity through :meth:`tile` only. The core asks for it when a memory budget is set
    #: and the full matrix does not fit.
    tiles: ClassVar[bool] = False

    @classmethod
    def tiled_state_bytes(cls, sizes_a: Sequence[int], sizes_b: Sequence[int], samples: int) -> int:
        """Bytes the metric holds in tiled mode after ``samples`` samples (an upper bound)."""
        raise NotImplementedError(f"metric {cls.name!r} cannot compute its similarity in tiles")

    def tile(self, rows: slice, cols: slice) -> np.ndarray:
        """The similarity of A's neurons ``rows`` with B's neurons ``cols``: a new array of
        shape (len(rows), len(cols)), float32 or float64, that the core may overwrite. Entries
        of constant neurons may hold any value (the core sets them to 0). The default copies a
        slice of :meth:`compute`."""
        return np.array(self.compute()[rows, cols])


# -- what the core checks of a metric plugin's work ------------------------------------------------
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

        from .hookspecs import NAME

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


@dataclass(frozen=True)
class Match:
    """Each row neuron's partner column (-1 for none) and the score of that pair (0 for none)."""

    partner: np.ndarray
    score: np.ndarray


@dataclass(frozen=True)
class Candidates:
    """A score matrix of ``shape`` (rows, cols) known only at some entries, as coordinates.

    What the core keeps when the similarity is computed in tiles: for every row and every
    column its ``MatchingStrategy.candidates`` best entries (penalised when the depth
    penalty applies). ``rows``, ``cols`` (int64) and ``values`` (float64) have one element
    per entry, with no repeated (row, col) pair.
    """

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]

    def transpose(self) -> Candidates:
        return Candidates(self.cols, self.rows, self.values, (self.shape[1], self.shape[0]))


class MatchingStrategy(ABC):
    """Turns a score matrix (rows: neurons of one model, columns: the other's; higher is
    better, never NaN) into one partner per row."""

    name: ClassVar[str]
    #: How constant (dead) neurons, whose similarity is undefined, are treated by default:
    #: ``"zero"`` scores them 0 (the seed paper's convention); ``"error"`` stops the
    #: comparison with a message naming them. ``compare(constant_neurons=...)`` overrides it.
    constant_neurons: ClassVar[Literal["zero", "error"]] = "zero"
    #: Entries per row and per column the strategy needs when the similarity is computed in
    #: tiles: the core keeps each row's and column's ``candidates`` best and calls
    #: :meth:`match_candidates`. 0 means the strategy needs the full matrix.
    candidates: int = 0
    #: True if the pairs are the same whichever model gives the rows (``mutual``,
    #: ``hungarian``): the core then derives the second direction by inverting the first.
    one_to_one: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def match(self, scores: np.ndarray) -> Match:
        """Return the partner and score of every row of ``scores`` (rows, cols)."""

    def match_candidates(self, cand: Candidates) -> Match:
        """Like :meth:`match` on a matrix known only at ``cand``'s entries."""
        raise NotImplementedError(f"matching {self.name!r} needs the full score matrix")
