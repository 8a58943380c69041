"""The options of a comparison, as one frozen, validated object.

:func:`neurocorr_core.compare.compare` takes an :class:`Options` (or the same names as keywords,
which build one); the command line builds it from parsed ``compare`` arguments
(:meth:`Options.from_args`) and an experiment file's ``[compare]`` table can be read into one
(:meth:`Options.from_mapping`). The checks of each option run once, when the object is made,
so every way in is refused with the same message: a :class:`NeurocorrError` naming the option
and what is allowed.

The inputs of a comparison (the models, their providers and provider options, the probes) and
the plugin manager are not options: they say what is compared, not how.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import NeurocorrError
from .probe import check_batch_size
from .sampling import Amount, check_amount
from .scale_out import options_from
from .score import check_penalty
from .selection import Selector
from .significance import check_significance_options
from .tiles import parse_budget
from .views import check_neurons


@dataclass(frozen=True)
class Options:
    """How two networks are compared (see :func:`neurocorr_core.compare.compare` for each option).

    Made once and checked once: ``batch_size``, ``sample_neurons`` and ``sample_probe`` keep their
    checked value, ``memory_budget`` its size in bytes (``"4GB"`` -> 4000000000)."""

    metric: str = "pearson"
    matching: str = "max"
    neurons: str = "channel"
    layers_a: Selector = None
    layers_b: Selector = None
    depth_penalty: str = "paper"
    absolute: bool = True
    batch_size: int = 256
    constant_neurons: str | None = None
    metric_options: dict[str, Any] | None = None
    matching_options: dict[str, Any] | None = None
    sample_neurons: Amount = None
    sample_probe: Amount = None
    memory_budget: int | str | None = None
    seed: int = 0
    permutations: int = 0
    bootstrap: int = 0
    confidence: float = 0.95
    progress: bool = False
    executor: Any = None  # an executor's name, or a started executor (the API only)
    executor_options: dict[str, Any] | None = None
    scheduler: str | None = None
    workers: int | None = None
    shards: int | None = None
    cache: Any = None  # a cache folder, or True for the default one

    def __post_init__(self) -> None:
        # The order of the checks is the order compare() has always reported them in.
        check_neurons(self.neurons)
        check_penalty(self.depth_penalty)
        check_significance_options(self.permutations, self.bootstrap, self.confidence)
        # A frozen object normalises its own fields once, here, before anyone can read them.
        object.__setattr__(self, "batch_size", check_batch_size(self.batch_size))
        object.__setattr__(self, "sample_neurons", check_amount(self.sample_neurons, "sample_neurons"))
        object.__setattr__(self, "sample_probe", check_amount(self.sample_probe, "sample_probe"))
        object.__setattr__(self, "memory_budget", parse_budget(self.memory_budget))

    @property
    def significance(self) -> bool:
        """True when the permutation null or the bootstrap runs (they keep every activation)."""
        return bool(self.permutations or self.bootstrap)

    @property
    def budget(self) -> int | None:
        """``memory_budget`` in bytes (None: no budget)."""
        return parse_budget(self.memory_budget)

    @classmethod
    def names(cls) -> list[str]:
        """Every option's name, in the order of the fields."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def of(cls, options: Options | None = None, **keywords: Any) -> Options:
        """``options`` (default: every default) with ``keywords`` replacing some of them; an
        unknown keyword is refused with the closest option's name."""
        unknown = [key for key in keywords if key not in cls.names()]
        if unknown:
            raise NeurocorrError(f"unknown comparison option {unknown[0]!r}{suggest(unknown[0], cls.names())}; "
                                 f"the options are: {', '.join(cls.names())}")
        if options is None:
            return cls(**keywords)
        return dataclasses.replace(options, **keywords) if keywords else options

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], where: str = "options") -> Options:
        """Options from a table of plain values (an experiment file's ``[compare]``, read from
        TOML): each key an option's name (a '-' is read as '_'), each value of the option's type.
        ``where`` names the table in messages: ``<where>.<key>: <what is wrong>; <what is allowed>``."""
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for raw, value in table.items():
            key = raw.replace("-", "_")
            if key not in hints:
                raise NeurocorrError(f"{where}.{raw}: unknown key{suggest(key, cls.names())}; allowed keys: "
                                     f"{', '.join(cls.names())}")
            if key in values:
                raise NeurocorrError(f"{where}.{raw}: given twice (with '-' and with '_')")
            if not fits(value, hints[key]):
                raise NeurocorrError(f"{where}.{raw}: must be {describe(hints[key])}, not {typename(value)}")
            values[key] = value
        try:
            return cls(**values)
        except NeurocorrError as exc:
            raise NeurocorrError(f"{where}: {exc}") from None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        """The options that parsed ``neurocorr compare`` arguments ask for; the executor is
        resolved here, before any model or probe is opened."""
        return cls(
            metric=args.metric, matching=args.matching, neurons=args.neurons,
            layers_a=args.layers_a, layers_b=args.layers_b, depth_penalty=args.depth_penalty,
            absolute=not args.signed, batch_size=args.batch_size, constant_neurons=args.constant_neurons,
            matching_options={"top_k": args.top_k} if args.top_k is not None else None,
            sample_neurons=args.sample_neurons, sample_probe=args.sample_probe,
            memory_budget=args.memory_budget, seed=args.seed,
            permutations=args.permutations, bootstrap=args.bootstrap, confidence=args.confidence,
            progress=not args.quiet, **options_from(args))


# -- plain-value types ---------------------------------------------------------------------------
def fits(value: Any, hint: Any) -> bool:
    """Whether a plain value (from TOML or JSON) is of the type ``hint`` of an option."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arm) for arm in typing.get_args(hint))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if origin is Sequence or origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(fits(v, item) for v in value)
    return False


def describe(hint: Any) -> str:
    """An option's type in words, for messages and ``neurocorr run --keys``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        arms = [describe(arm) for arm in typing.get_args(hint) if arm is not type(None)]
        return " or ".join(dict.fromkeys(arms))
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint in words:
        return words[hint]
    if typing.get_origin(hint) is dict:
        return "a table"
    if typing.get_origin(hint) in (Sequence, list):
        return "a list of " + describe(typing.get_args(hint)[0]).removeprefix("an ").removeprefix("a ") + "s"
    return "a value"


def suggest(word: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def typename(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a table"}
    shown = repr(value) if not isinstance(value, (dict, list)) or len(repr(value)) < 40 else ""
    return f"{names.get(type(value), type(value).__name__)} {shown}".strip()
