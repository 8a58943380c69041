"""``neurocorr run experiment.toml``: a comparison described in a TOML file.

The file has three tables::

    [models]                 # the two models: files or module:callable references
    a = "nets/trusted.pt"
    b = "nets/new.pt"

    [compare]                # every option of 'neurocorr compare', by its long name
    probe = "digits"
    probe_limit = 500        # --probe-limit (a '-' in a key is read as '_')
    metrics = ["pearson"]    # or metric = "pearson"; several metrics run one comparison each

    [outputs]                # the output options of 'neurocorr compare'
    json = "out/{metric}.json"
    report = "out/{metric}.html"

The allowed keys, their types and their allowed values are read from the ``compare``
subcommand's own argument parser, so a new ``compare`` option is a new config key with no
change here (:mod:`neurocorr_core.config_schema` holds those rules and their checks). Relative
paths are relative to the folder of the config file. Every problem is reported with the key
that holds it and what is allowed, before any work starts. This module turns a valid file into
an :class:`Experiment`: the parsed ``compare`` arguments of each metric, run by :func:`run`
(no command line is written out and parsed again).

An experiment file is data from whoever wrote it, never a decision to run code: a
``module:callable`` reference may name a module next to the file, but that folder is never put
in front of the installed packages (:mod:`neurocorr_core.models`), and unpickling is allowed only
by the person running the command (``neurocorr run FILE --trust-pickle``, which trusts both
models). A file's ``trust_pickle``/``trust_pickle_a``/``trust_pickle_b`` key grants nothing: it is
refused unless the command line says ``--trust-pickle`` as well.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config_schema import TRUST_KEYS, ConfigChecker, compare_options
from .errors import NeurocorrError
from .models import reference_folder
from .outputs import OUTPUT_KINDS, csv_text, render_outputs, write_all
from .plugins import PluginManager, get_plugin_manager
from .result import Comparison

#: The compare flags that ``neurocorr run --trust-pickle`` passes: both models are trusted.
_TRUST_FLAGS = ("trust_pickle_a", "trust_pickle_b")


def subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The subcommand parser ``name`` of the top-level ``neurocorr`` parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action.choices[name]
    raise KeyError(name)


@dataclass
class Experiment:
    """A validated config: the ``compare`` arguments of each metric (as the command line's parser
    would hold them: its defaults, the file's values through the options' own types), and the outputs."""

    source: Path
    metrics: list[str]
    arguments: dict[str, argparse.Namespace]  # metric -> the compare arguments (no output options)
    outputs: dict[str, dict[str, Path]] = field(default_factory=dict)  # metric -> kind -> path
    quiet: bool = False
    trust_pickle: bool = False  # given on the command line, never read from the file

    @property
    def folder(self) -> Path:
        return self.source.parent


def load(path: str | os.PathLike[str], parser: argparse.ArgumentParser,
         overrides: Mapping[str, str | None] | None = None, pm: PluginManager | None = None, *,
         trust_pickle: bool = False) -> Experiment:
    """Read and validate ``path`` against the ``compare`` ``parser``.

    ``overrides``: output paths given on the command line (``{"json": "r.json"}``), relative
    to the current folder; they replace the file's [outputs] of the same kind. ``"-"`` means
    standard output and is not checked. ``pm``: the plugin manager whose metric and matching
    names are allowed (default: the process-wide one). ``trust_pickle``: the person running the
    experiment allows unpickling both models (the command line's ``--trust-pickle``; the file's
    own trust keys are refused without it). Raises :class:`NeurocorrError` naming the key at fault.
    """
    source = Path(path)
    data = _read(source)
    options = compare_options(parser)
    checker = ConfigChecker(source, options, pm or get_plugin_manager(), trust_pickle)
    checker.tables(data)
    models = checker.models(data.get("models", {}))
    values, metrics = checker.compare(data.get("compare", {}))
    checker.probe_given(models, values)
    outputs = checker.outputs(data.get("outputs", {}), overrides or {}, metrics)
    if trust_pickle:
        values.update({flag: True for flag in _TRUST_FLAGS if flag in options})
    defaults = {key: option.default for key, option in options.items() if key not in OUTPUT_KINDS}
    models_args = {"model_a": models["a"], "model_b": models["b"]}
    arguments = {m: argparse.Namespace(**{**defaults, **values, **models_args, "metric": m}) for m in metrics}
    return Experiment(source, metrics, arguments, outputs, bool(values.get("quiet", False)), trust_pickle)


def _read(source: Path) -> dict[str, Any]:
    if not source.is_file():
        raise NeurocorrError(f"config file {str(source)!r} does not exist; give the path of a "
                             ".toml file (see 'neurocorr run --keys' for what it may hold)")
    try:
        with source.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise NeurocorrError(f"{source}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NeurocorrError(f"cannot read config file {source}: {exc}") from None


def keys_table(parser: argparse.ArgumentParser) -> str:
    """The config keys ``neurocorr run`` accepts, with types and allowed values (``--keys``)."""
    options = compare_options(parser)
    lines = ["[models]", "  a  (required)  model A: a file or a module:callable reference",
             "  b  (required)  model B: a file or a module:callable reference", "", "[compare]"]
    for key, option in sorted(options.items()):
        if key in OUTPUT_KINDS:
            continue
        need = "  (required)" if option.required else ""
        if key in TRUST_KEYS:
            lines.append(f"  {key}  refused unless the command line says --trust-pickle (neurocorr run FILE "
                         "--trust-pickle trusts both models; a file cannot)")
            continue
        lines.append(f"  {key}{need}  {option.flag}: {option.describe()}"
                     + (f". {option.help}" if option.help else ""))
    lines.append("  metrics  a list of metric names; one comparison per metric (instead of 'metric')")
    lines += ["", "[outputs]  (file paths; with several metrics put {metric} in the name)"]
    lines += [f"  {k}  {options[k].flag}: {options[k].help}" for k in OUTPUT_KINDS if k in options]
    return "\n".join(lines)


def run(experiment: Experiment, comparison: Callable[[argparse.Namespace], Comparison], *,
        quiet: bool = False) -> dict[str, Comparison]:
    """Run every comparison of ``experiment`` (``comparison`` turns ``compare`` arguments into a
    result), then write all its outputs at once: all of them or, on an error, none."""
    results: dict[str, Comparison] = {}
    quiet = quiet or experiment.quiet
    with reference_folder(experiment.folder):  # module:callable references next to the config file
        for metric in _progress(experiment.metrics, quiet):
            arguments = experiment.arguments[metric]
            if quiet:
                arguments = argparse.Namespace(**{**vars(arguments), "quiet": True})
            results[metric] = comparison(arguments)
    write_all(render_experiment(experiment, results))
    return results


def render_experiment(experiment: Experiment, results: Mapping[str, Comparison]) -> dict[Path, bytes]:
    """The bytes of every output file; a CSV path shared by several metrics gets all their rows."""
    files: dict[Path, bytes] = {}
    shared_csv: dict[Path, list[Comparison]] = {}
    for metric, result in results.items():
        outputs = dict(experiment.outputs.get(metric, {}))
        if "csv" in outputs:
            shared_csv.setdefault(outputs.pop("csv"), []).append(result)
        files.update(render_outputs(result, outputs))
    for path, group in shared_csv.items():
        files[path] = csv_text(group).encode()
    return files


def _progress(metrics: list[str], quiet: bool) -> Iterator[str]:
    if quiet or len(metrics) < 2 or not sys.stderr.isatty():
        return iter(metrics)
    from tqdm import tqdm

    return iter(tqdm(metrics, desc="metrics", unit="metric", leave=False))
