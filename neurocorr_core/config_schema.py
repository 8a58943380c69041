"""What an experiment file may hold, and the checks each table passes before any work starts.

The tables are ``[models]``, ``[compare]`` and ``[outputs]`` (see :mod:`neurocorr_core.config`).
The keys of ``[compare]`` and ``[outputs]``, their types and their allowed values are read
from the ``compare`` subcommand's own argument parser (:func:`compare_options`), so a new
``compare`` option is a new config key with no change here. Every problem is reported as
``<file>: <key>: <what is wrong>; <what is allowed>``.

Its own module because the rules of the file are one thing and the experiment that a valid
file stands for (its ``compare`` command lines, its run, its outputs) another: that is
:mod:`neurocorr_core.config`, which reads the file and hands it to :class:`ConfigChecker`.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import NeurocorrError
from .files import check_writable
from .models import is_reference, named
from .options import suggest, typename
from .outputs import OUTPUT_KINDS, STDOUT, check_outputs
from .plugins import PluginManager

TABLES = ("models", "compare", "outputs")
#: Keys of the [models] table and the positional arguments of 'compare' they stand for.
MODEL_KEYS = {"a": "model_a", "b": "model_b"}
#: The placeholder an output path must hold when an experiment runs several metrics.
METRIC_FIELD = "{metric}"
#: Compare options whose string value is a probe: a built-in data set name or a file path.
PROBE_KEYS = ("probe", "probe_b")
#: Keys that would allow unpickling (code from the model files): only the command line decides.
TRUST_KEYS = ("trust_pickle", "trust_pickle_a", "trust_pickle_b")


@dataclass(frozen=True)
class Option:
    """One config key, derived from one option of the ``compare`` argument parser."""

    key: str
    flag: str
    kind: str  # "bool", "int", "float", "str", or "value" (parsed by the option's own type)
    choices: tuple[Any, ...] | None = None
    required: bool = False
    default: Any = None
    many: bool = False  # a list of values (nargs '+'/'*' or action 'append')
    append: bool = False  # the flag is repeated once per value (action 'append')
    store: bool = True  # False for store_false flags
    help: str = ""
    parse: Callable[[str], Any] | None = None

    def describe(self) -> str:
        """The type and allowed values, for messages and ``neurocorr run --keys``."""
        kind = {"bool": "true or false", "int": "an integer", "float": "a number",
                "str": "a string", "value": "a string"}[self.kind]
        if self.many:
            kind = f"a list of {kind.removeprefix('an ').removeprefix('a ')}s"
        if self.choices:
            kind += f", one of: {', '.join(map(str, self.choices))}"
        return kind


def compare_options(parser: argparse.ArgumentParser) -> dict[str, Option]:
    """Every optional argument of the ``compare`` parser as an :class:`Option`, by key (dest)."""
    options: dict[str, Option] = {}
    for action in parser._actions:  # argparse offers no public listing of a parser's options
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        flag = max(action.option_strings, key=len)
        many = isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*")
        options[action.dest] = Option(
            key=action.dest, flag=flag, kind=_kind(action), required=action.required,
            choices=tuple(action.choices) if action.choices else None, default=action.default,
            many=many, append=isinstance(action, argparse._AppendAction),
            store=not isinstance(action, argparse._StoreFalseAction),
            help=action.help or "", parse=action.type if callable(action.type) else None)
    return options


def _kind(action: argparse.Action) -> str:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "bool"
    if action.type in (None, str):
        return "str"
    if action.type is int:
        return "int"
    if action.type is float:
        return "float"
    return "value"


class ConfigChecker:
    """Validation with messages of the form '<file>: <key>: <what is wrong>; <what is allowed>'."""

    def __init__(self, source: Path, options: dict[str, Option], pm: PluginManager,
                 trust_pickle: bool = False) -> None:
        self.source = source
        self.pm = pm
        self.options = options
        self.trust_pickle = trust_pickle
        self.outputs_allowed = [k for k in OUTPUT_KINDS if k in options]
        self.compare_allowed = sorted({*(k for k in options if k not in OUTPUT_KINDS), "metrics"})

    def fail(self, key: str, problem: str) -> NeurocorrError:
        return NeurocorrError(f"{self.source}: {key}: {problem}")

    def tables(self, data: Mapping[str, Any]) -> None:
        for name, value in data.items():
            if name not in TABLES:
                raise self.fail(name, f"unknown {'table' if isinstance(value, dict) else 'key'}"
                                f"{suggest(name, TABLES)}; the file holds the tables "
                                f"{', '.join(f'[{t}]' for t in TABLES)}")
            if not isinstance(value, dict):
                raise self.fail(name, f"must be a table [{name}], not {typename(value)}")

    def keys(self, table: str, values: Mapping[str, Any], allowed: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for raw, value in values.items():
            key = raw.replace("-", "_")
            if key not in allowed:
                raise self.fail(f"{table}.{raw}", f"unknown key{suggest(key, allowed)}; allowed "
                                f"keys in [{table}]: {', '.join(allowed)}")
            if key in out:
                raise self.fail(f"{table}.{raw}", "given twice (with '-' and with '_')")
            out[key] = value
        return out

    def models(self, table: Mapping[str, Any]) -> dict[str, str]:
        values = self.keys("models", table, list(MODEL_KEYS))
        models = {}
        for key in MODEL_KEYS:
            if key not in values:
                raise self.fail(f"models.{key}", "missing; [models] needs 'a' and 'b': model files "
                                "or module:callable references")
            value = values[key]
            if not isinstance(value, str) or not value:
                raise self.fail(f"models.{key}", f"must be a non-empty string, not {typename(value)}")
            models[key] = self.model(f"models.{key}", value)
        return models

    def model(self, key: str, value: str) -> str:
        path = self.source.parent / value
        if os.path.exists(path):  # os.path.exists: False, not OSError, for a name too long for the disk
            return str(path)
        if named(value) or is_reference(value):  # a model by name, or module:callable from the config's folder
            return value
        raise self.fail(key, f"model file {str(path)!r} does not exist (relative paths are relative "
                        f"to the folder of {self.source.name}); give an existing file, a "
                        "'module:callable' reference or a model by name (docs/models-by-name.md)")

    def compare(self, table: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        values = self.keys("compare", self.without_trust(table), self.compare_allowed)
        metrics = self.metrics(values)
        values.pop("metrics", None)
        for key, value in values.items():
            values[key] = self.value(f"compare.{key}", self.options[key], value)
        for key, option in self.options.items():
            if option.required and key not in values and key not in OUTPUT_KINDS:
                raise self.fail(f"compare.{key}", f"missing; it is required ({option.flag} of "
                                f"'neurocorr compare': {option.help})")
        for key in PROBE_KEYS:
            if isinstance(values.get(key), str):
                values[key] = self.probe(f"compare.{key}", values[key])
        if isinstance(values.get("cache_dir"), str):
            values["cache_dir"] = str(self.inside("compare.cache_dir", values["cache_dir"],
                                                 "name a cache folder inside it, or pass 'neurocorr compare "
                                                 "... --cache-dir PATH'"))
        in_options = any(name == "scheduler" for name, _ in values.get("executor_option") or [])
        if values.get("scheduler") is not None or in_options:  # --executor-option scheduler=ADDR too
            key = "compare.executor_option" if in_options else "compare.scheduler"
            raise self.fail(key, "an experiment file cannot choose a Dask scheduler (this "
                            "process unpickles what a scheduler sends back, so it could run code here); leave it "
                            "out to start a local cluster, or give it on the command line: neurocorr compare A B "
                            "--executor dask --scheduler ADDR")
        self.plugin_names("metric", "metrics" if "metric" not in table else "metric", metrics)
        if isinstance(values.get("matching"), str):
            self.plugin_names("matching", "matching", [values["matching"]])
        return values, metrics

    def probe_given(self, models: Mapping[str, str], values: Mapping[str, Any]) -> None:
        """A probe, unless both models are activations (the arrays are the samples)."""
        if values.get("probe") is None and not all(map(self.holds_samples, models.values())):
            option = self.options["probe"]
            raise self.fail("compare.probe", f"missing; it is required ({option.flag} of 'neurocorr compare': "
                            f"{option.help})")

    def holds_samples(self, model: str) -> bool:
        try:
            return self.pm.provider_for(model).holds_samples
        except NeurocorrError:  # no provider, or two: the comparison says so when it opens the model
            return False

    def without_trust(self, table: Mapping[str, Any]) -> dict[str, Any]:
        """The table less its trust keys. Whoever can write the file could otherwise make the
        person running it unpickle code, so a key that asks for trust is refused unless the
        command line grants it; with ``--trust-pickle`` it is redundant (both models are trusted)."""
        rest = {}
        for raw, value in table.items():
            key = raw.replace("-", "_")
            if key not in TRUST_KEYS:
                rest[raw] = value
            elif not isinstance(value, bool):
                raise self.fail(f"compare.{raw}", f"must be true or false, not {typename(value)}")
            elif value and not self.trust_pickle:
                raise self.fail(f"compare.{raw}", "an experiment file cannot allow unpickling (it runs code "
                                "from the model files); if you trust both model files, pass --trust-pickle on "
                                "the command line: neurocorr run FILE --trust-pickle")
        return rest

    def inside(self, key: str, value: str, elsewhere: str) -> Path:
        """A path the file writes to, which must stay inside the file's own folder (links
        resolved as a write would follow them): whoever wrote the file chooses no place
        outside it; the person running it may (``--json PATH`` on the command line)."""
        folder = Path(os.path.realpath(self.source.parent))
        path = self.source.parent / value
        if not Path(os.path.realpath(path)).is_relative_to(folder):
            raise self.fail(key, f"{value!r} lies outside the experiment's folder {folder}; an experiment "
                            f"file writes only inside its own folder. To write elsewhere, {elsewhere}")
        return path

    def plugin_names(self, role: str, key: str, names: Sequence[str]) -> None:
        """Metric and matching names are chosen among installed plugins: check them up front,
        so that a typo in the second metric does not cost the first comparison."""
        known = self.pm.names(role)
        for name in names:
            if name not in known:
                raise self.fail(f"compare.{key}", f"no {role} named {name!r}{suggest(name, known)}; "
                                f"installed: {', '.join(known) or 'none'} (see 'neurocorr plugins')")

    def metrics(self, values: Mapping[str, Any]) -> list[str]:
        if "metrics" in values and "metric" in values:
            raise self.fail("compare.metrics", "give either 'metric' or 'metrics', not both")
        if "metrics" not in values:
            metric = values.get("metric", self.options["metric"].default if "metric" in self.options else None)
            if not isinstance(metric, str):
                raise self.fail("compare.metric", f"must be a string, not {typename(metric)}")
            return [metric]
        metrics = values["metrics"]
        if (not isinstance(metrics, list) or not metrics
                or not all(isinstance(m, str) and m for m in metrics)):
            raise self.fail("compare.metrics", f"must be a non-empty list of metric names, such as "
                            f"[\"pearson\", \"spearman\"], not {typename(metrics)}")
        if len(set(metrics)) != len(metrics):
            raise self.fail("compare.metrics", "lists a metric twice")
        return list(metrics)

    def value(self, key: str, option: Option, value: Any) -> Any:
        if option.many:
            if not isinstance(value, list):
                value = [value]
            return [self.scalar(key, option, v) for v in value]
        return self.scalar(key, option, value)

    def scalar(self, key: str, option: Option, value: Any) -> Any:
        ok = {"bool": lambda v: isinstance(v, bool),
              "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "str": lambda v: isinstance(v, str),
              "value": lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool)}[option.kind]
        if not ok(value):
            raise self.fail(key, f"must be {option.describe()}, not {typename(value)}")
        if option.choices and value not in option.choices:
            raise self.fail(key, f"{value!r} is not allowed; choose one of: "
                            f"{', '.join(map(str, option.choices))}")
        if option.parse is not None and option.kind == "value":
            try:  # the value the command line would hold: the option's own parser's result
                return option.parse(str(value))
            except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
                raise self.fail(key, f"{value!r} is not valid: {exc}") from None
        return value

    def probe(self, key: str, value: str) -> str:
        """A data set name a plugin reads stays as it is; anything else is a file next to the config."""
        path = self.source.parent / value
        names = self.pm.probe_names()
        if value.partition(":")[0] in names and not os.path.exists(path):
            return value
        if os.path.isdir(str(path).rpartition("?")[0]):  # a folder of images with ?options
            return str(path)
        if not os.path.exists(path):  # False, not OSError, for a name too long for the disk
            raise self.fail(key, f"{value!r} is neither a built-in data set ({', '.join(names) or 'none installed'}) "
                            f"nor a file: {str(path)!r} does not exist (relative paths are relative to "
                            f"the folder of {self.source.name})")
        return str(path)

    def outputs(self, table: Mapping[str, Any], overrides: Mapping[str, str | None],
                metrics: Sequence[str]) -> dict[str, dict[str, Path]]:
        values = self.keys("outputs", table, self.outputs_allowed)
        paths: dict[str, tuple[str, Path | None]] = {}
        for kind, value in values.items():
            if not isinstance(value, str) or not value:
                raise self.fail(f"outputs.{kind}", f"must be a file path (a string), not {typename(value)}")
            paths[kind] = (f"outputs.{kind}", self.inside(f"outputs.{kind}", value,
                                                          f"give the path on the command line: --{kind} PATH"))
        for kind, value in overrides.items():
            if value is not None:
                paths[kind] = (f"--{kind}", None if value == STDOUT else Path(value))
        per_metric: dict[str, dict[str, Path]] = {m: {} for m in metrics}
        for kind, (where, path) in paths.items():
            if path is None:
                continue  # standard output
            self.expand(kind, where, path, metrics, per_metric)
        to_stdout = {kind: STDOUT for kind, (_, path) in paths.items() if path is None}
        for files in per_metric.values():  # the checks 'compare' makes: one file per output, one stdout
            try:
                check_outputs({**files, **to_stdout})
            except NeurocorrError as exc:
                raise NeurocorrError(f"{self.source}: {exc}") from None
        return per_metric

    def expand(self, kind: str, where: str, path: Path, metrics: Sequence[str],
               per_metric: dict[str, dict[str, Path]]) -> None:
        if len(metrics) > 1 and METRIC_FIELD not in str(path) and kind != "csv":
            raise NeurocorrError(f"{self.source}: {where}: {len(metrics)} metrics would write the "
                                 f"same file {str(path)!r}; put {METRIC_FIELD} in its name, e.g. "
                                 f"{path.stem}-{METRIC_FIELD}{path.suffix}")
        for metric in metrics:
            target = Path(str(path).replace(METRIC_FIELD, _file_safe(metric)))
            try:
                check_writable(target)
            except NeurocorrError as exc:
                raise NeurocorrError(f"{self.source}: {where}: {exc}") from None
            per_metric[metric][kind] = target


def _file_safe(metric: str) -> str:
    """``metric`` as it may stand in a file name (for the {metric} placeholder)."""
    return re.sub(r"[^\w.-]", "_", metric)
