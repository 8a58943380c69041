"""The contracts plugins implement: activation providers, metrics, matching strategies,
executors and commands."""

from __future__ import annotations

import argparse
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from .errors import NeurocorrError

#: The entry-point group, the hook prefix's project name and the plugin manager's name.
NAME = "neurocorr"

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
    for prefix, kind in (("conv", "conv"), ("depthwiseconv", "conv"), ("separableconv", "conv"),
                         ("linear", "dense"), ("dense", "dense"),
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
    #: True for a provider whose model *is* its samples (precomputed activations): it sets
    #: :attr:`samples`, needs no probe, and is fed sample indices (see :func:`~neurocorr_core.compare.index_probe`).
    holds_samples: ClassVar[bool] = False
    samples: int = 0

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

    def rows(self, probe: Any, neurons: str) -> int | None:
        """The rows the view ``neurons`` makes of ``probe``, counted without running the model, for
        planning a memory budget (e.g. the real tokens under ``token``); None (default): one a sample."""
        return None

    def single_threaded(self, shape: tuple[int, ...]) -> bool:
        """True if a probe batch of ``shape`` runs on one thread: the core then makes the next
        batches in a second thread while the metric works (:mod:`neurocorr_core.overlap`)."""
        return False

    def fingerprint(self) -> str | None:
        """A digest of what decides the model's outputs (weights, graph), the activation cache's
        model key; optional. None (the default): the core hashes a model file's bytes or a
        ``module:callable`` reference and its module's source itself, and does not cache an
        in-memory model (see :mod:`neurocorr_scale.cache`)."""
        return None


def _refuse_unknown(cls: type, options: dict[str, Any], role: str = "provider",
                    shared: frozenset[str] = frozenset({"trust_pickle"})) -> None:
    """Options no constructor of ``cls`` took (``shared`` ones go to every class of the role:
    ``trust_pickle`` reaches every provider, and one that loads no pickles ignores it) are a
    user's mistake: say which, and what the class takes."""
    unknown = sorted(set(options) - shared)
    if unknown:
        named = set().union(*(_parameters(c) for c in cls.__mro__ if "__init__" in vars(c))) - shared
        raise NeurocorrError(f"{role} {getattr(cls, 'name', cls.__name__)!r} has no option(s) "
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
    #: True if the constructor takes the option ``memory_budget`` (bytes): the core then passes
    #: the comparison's budget (``compare(memory_budget=...)``) unless the user's metric options
    #: give one (e.g. spearman spills activations to disk beyond it).
    takes_memory_budget: ClassVar[bool] = False

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


class Executor(ABC):
    """Runs tasks: ``submit(fn, *args)`` returns a handle; handles given as arguments of a later
    task stand for their results. Use as a context manager (``close`` releases a cluster).

    The constructor takes the executor's options (``--executor-option KEY=VALUE``) as keywords,
    each a named parameter of a constructor in the class hierarchy; a subclass passes the rest
    on (``super().__init__(**options)``), and what reaches this base constructor is refused,
    naming the options the executor takes."""

    name: ClassVar[str]
    #: Tasks run in other processes: models must travel as paths or references.
    remote: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        _refuse_unknown(type(self), options, "executor", frozenset())

    def slots(self) -> int:
        """How many tasks it runs at once (a remote executor's workers): the default shard count."""
        return 1

    def put(self, value: Any) -> Any:
        """A handle for data many tasks read (sent to the cluster once)."""
        return value

    @abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)``; handles among ``args`` are replaced by their results."""

    @abstractmethod
    def as_completed(self, handles: Mapping[Any, Any]) -> Iterator[tuple[Any, Any]]:
        """``(tag, result)`` for every ``{tag: handle}`` as each finishes; a failed task raises."""

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release the cluster (if this executor started one) and the connection."""

    def token(self, handle: Any) -> Any:
        """Something small that names ``handle`` for :meth:`finished` (it does not keep the
        handle's result alive)."""
        return None

    def finished(self, token: Any) -> bool:
        """Whether the task of :meth:`token` had finished (locally, every submitted task has)."""
        return True

    def describe(self) -> str:
        return self.name

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Command(ABC):
    """A subcommand of ``neurocorr`` (``neurocorr NAME ...``), offered through the
    ``neurocorr_commands`` hook: the core's own commands come in the same way.

    ``name`` and ``help`` show in ``neurocorr --help``; :meth:`configure` adds the command's
    arguments to its parser; :meth:`run` does the work and returns the exit status (0 when
    done). A user error is a :class:`NeurocorrError` (the CLI prints it as one line, exit 2).
    Keep the module that defines a command import-light: ``neurocorr --help`` builds every
    command's parser, so import frameworks inside :meth:`run`.
    """

    name: ClassVar[str]
    help: ClassVar[str] = ""
    #: Command lines that show the command at work, one per line (``#`` comments allowed): the
    #: ``examples:`` epilog of its ``--help``; the project's tests run every one.
    examples: ClassVar[str] = ""
    #: False for a command that reads its own arguments (:meth:`run_argv`), e.g. with a
    #: parser of its own: ``neurocorr NAME ...`` then hands it everything after NAME.
    parsed: ClassVar[bool] = True

    def configure(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027 - no arguments by default
        """Add the command's arguments to ``parser``."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the work for the parsed ``args``; return the exit status."""
        raise NotImplementedError(f"command {self.name!r} implements run_argv, not run")

    def run_argv(self, argv: list[str]) -> int:
        """Do the work for the raw arguments after the command's name (``parsed = False``)."""
        raise NotImplementedError(f"command {self.name!r} implements run, not run_argv")
