"""The core's own subcommands: ``plugins``, ``layers``, ``compare``, ``run`` and ``data``.

They reach the command line the way a plugin's commands do: the built-in plugin
(:mod:`neurocorr_core.builtins`) returns them from the ``neurocorr_commands`` hook.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import NoReturn

import numpy as np

from . import config, scale_out
from .cli_options import (
    add_comparison_options,
    add_json_option,
    add_model_options,
    emit_json,
    model_options,
    parse_input_shape,
)
from .compare import compare, open_model
from .errors import NeurocorrError
from .interfaces import Command
from .options import Options
from .outputs import OUTPUT_KINDS, STDOUT, check_outputs, csv_text, render_outputs, stdout_to_stderr, write_all
from .plugins import BLOCK_ENV, get_plugin_manager
from .probe_sources import load_probe
from .result import Comparison
from .sampling import parse_amount
from .selection import containers
from .summary import summary


class PluginsCommand(Command):
    name = "plugins"
    help = "list plugins with version, hooks and status"
    examples = """
        neurocorr plugins            # each plugin: version, status, the names it provides
        neurocorr plugins --json     # the same as JSON
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_json_option(parser, "the plugins")

    def run(self, args: argparse.Namespace) -> int:
        infos = get_plugin_manager().plugins()
        if args.json:
            emit_json(args.json, [i.to_dict() for i in infos])
            return 0
        for info in infos:
            provides = "; ".join(f"{role}: {', '.join(names)}" for role, names in info.provides.items())
            line = f"{info.name:<12} {info.version:<10} {info.status:<12} {provides}"
            print(line + (f"  [{info.reason}]" if info.reason else ""))
        print(f"(disable plugins with {BLOCK_ENV}=name,name)")
        return 0


class LayersCommand(Command):
    name = "layers"
    help = "list a model's layers: name, output shape, depth, kind"
    examples = """
        neurocorr layers trusted.pt --probe digits          # fed the first digits images
        neurocorr layers trusted.pt --input-shape 1,8,8 --json
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", help="model file or module:callable reference")
        shape = parser.add_mutually_exclusive_group()
        shape.add_argument("--probe", help="probe whose first samples are fed (e.g. digits)")
        shape.add_argument("--input-shape", help="per-sample input shape, e.g. 1,28,28 or 64")
        add_model_options(parser)
        add_json_option(parser, "the layers")
        parser.add_argument("--all", action="store_true",
                            help="also list containers (a module or block that holds listed layers)")

    def run(self, args: argparse.Namespace) -> int:
        if args.input_shape:
            sample = np.zeros((2, *parse_input_shape(args.input_shape)), dtype=np.float32)
        else:
            sample = next(load_probe(args.probe or "digits", limit=2).batches(2))
        provider = open_model(args.model, provider=args.provider, **model_options(args))
        layers = provider.layers(sample)
        hidden = set() if args.all else containers(layers)
        layers = [layer for layer in layers if layer.name not in hidden]
        if args.json:
            emit_json(args.json, [layer.to_dict() for layer in layers])
            return 0
        print(f"{'depth':>5}  {'name':<30} {'kind':<10} {'op':<16} shape")
        for layer in layers:
            print(f"{layer.depth:>5}  {layer.name:<30} {layer.kind:<10} {layer.op:<16} {layer.shape}")
        return 0


class CompareCommand(Command):
    name = "compare"
    help = "compare two models on a probe"
    examples = """
        neurocorr compare trusted.pt retrained.pt --probe digits
        neurocorr compare trusted.pt retrained.pt --probe digits --report report.html --json result.json
        neurocorr compare trusted.pt retrained.pt --probe digits --permutations 20 --bootstrap 20
        neurocorr compare trusted.pt retrained.pt --probe digits --metric cka    # layer x layer CKA
        neurocorr compare trusted.pt retrained.pt --probe digits --quiet --json - > result.json
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        p = parser
        p.add_argument("model_a", help="model file or module:callable reference")
        p.add_argument("model_b", help="model file or module:callable reference")
        add_comparison_options(p, layers=True, probe_required=False)
        p.add_argument("--top-k", type=int, help="hungarian in tiles: candidates kept per neuron (default 16)")
        big = p.add_argument_group("large networks (docs/matching.md, docs/significance.md)")
        big.add_argument("--sample-neurons", type=_amount, metavar="AMOUNT",
                         help="estimate the score from a sample of each layer's neurons: a fraction (0.1) "
                              "or a count (100); reports its standard error (matching max only)")
        big.add_argument("--sample-probe", type=_amount, metavar="AMOUNT",
                         help="use a seeded sample of the probe: a fraction (0.5) or a count (1000)")
        big.add_argument("--memory-budget", metavar="SIZE",
                         help="e.g. 4GB: compute the similarity in tiles when the full matrix does not fit")
        big.add_argument("--seed", type=int, default=0, help="seed of every sampling, permutation and bootstrap")
        sig = p.add_argument_group("significance (docs/significance.md)")
        sig.add_argument("--permutations", type=int, default=0, metavar="N",
                         help="permutation null with N shuffles of B's probe order: z and p-value")
        sig.add_argument("--bootstrap", type=int, default=0, metavar="N",
                         help="bootstrap confidence interval from N resamples of the probe")
        sig.add_argument("--confidence", type=float, default=0.95, help="level of the interval (default 0.95)")
        add_model_options(p, "-a", "model A")
        add_model_options(p, "-b", "model B")
        p.add_argument("--json", metavar="OUT", help="write the full result as JSON to OUT ('-': standard output)")
        _output_options(p)
        scale_out.add_arguments(p)
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    def run(self, args: argparse.Namespace) -> int:
        outputs = {kind: getattr(args, kind) for kind in OUTPUT_KINDS if getattr(args, kind, None)}
        check_outputs(outputs)  # fail before the (long) comparison, not after it
        files = {kind: Path(path) for kind, path in outputs.items() if path != STDOUT}
        to_stdout = [kind for kind, path in outputs.items() if path == STDOUT]
        log = sys.stderr if to_stdout else sys.stdout  # keep standard output for the data
        with stdout_to_stderr() if to_stdout else contextlib.nullcontext():  # builders may print
            result = comparison(args)
            rendered = render_outputs(result, files)
        print(summary(result), file=log)
        write_all(rendered)
        for path in files.values():
            print(f"wrote {path}", file=log)
        if "json" in to_stdout:
            print(result.to_json())
        if "csv" in to_stdout:
            print(csv_text([result]), end="")
        return 0


class RunCommand(Command):
    name = "run"
    help = "run the comparison(s) an experiment file (TOML) describes"
    examples = """
        neurocorr run --keys                                # what an experiment file may hold
        neurocorr run experiment.toml --report report.html  # see docs/reference/config.md
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        p = parser
        p.add_argument("config", nargs="?", help="the experiment file, e.g. experiment.toml")
        p.add_argument("--keys", action="store_true", help="list the keys an experiment file may hold")
        p.add_argument("--trust-pickle", action="store_true",
                       help="allow loading both models from pickles (runs code from the files); an "
                            "experiment file cannot ask for this itself")
        p.add_argument("--json", metavar="OUT", help="write the result as JSON to OUT ('-': standard output)")
        _output_options(p, stdout=True)
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    def run(self, args: argparse.Namespace) -> int:
        parser = compare_parser()
        if args.keys:
            print(config.keys_table(parser))
            return 0
        if not args.config:
            raise NeurocorrError("give the experiment file: neurocorr run experiment.toml "
                                 "(neurocorr run --keys lists what it may hold)")
        overrides = {kind: getattr(args, kind) for kind in OUTPUT_KINDS}
        experiment = config.load(args.config, parser, overrides, trust_pickle=args.trust_pickle)
        to_stdout = [kind for kind in ("json", "csv") if overrides[kind] == "-"]
        log = sys.stderr if to_stdout else sys.stdout  # keep standard output for the data
        results = config.run(experiment, comparison, quiet=args.quiet)
        for metric, result in results.items():
            print(f"== metric {metric}\n{summary(result)}", file=log)
        for path in dict.fromkeys(p for files in experiment.outputs.values() for p in files.values()):
            print(f"wrote {path}", file=log)
        if "json" in to_stdout:
            data = [r.to_dict() for r in results.values()]
            print(json.dumps(data[0] if len(data) == 1 else data, indent=2))
        if "csv" in to_stdout:
            print(csv_text(results.values()), end="")
        return 0


#: The core's commands (the built-in plugin returns them from ``neurocorr_commands``).
COMMANDS: list[type[Command]] = [PluginsCommand, LayersCommand, CompareCommand, RunCommand]


class _CompareParser(argparse.ArgumentParser):
    """A usage error in an experiment file's ``compare`` options is one NeurocorrError, as on the
    command line (argparse would print the usage and exit)."""

    def error(self, message: str) -> NoReturn:
        raise NeurocorrError(f"{message}; see '{self.prog} --help'")


def compare_parser() -> argparse.ArgumentParser:
    """The ``compare`` command's parser on its own: ``run`` reads experiment files against it
    (every compare option is a key, see :mod:`neurocorr_core.config`)."""
    parser = _CompareParser(prog="neurocorr compare")
    CompareCommand().configure(parser)
    return parser


def comparison(args: argparse.Namespace) -> Comparison:
    """The comparison that parsed ``compare`` arguments ask for (also used by ``run``)."""
    return compare(
        args.model_a, args.model_b, None if args.probe is None else load_probe(args.probe, limit=args.probe_limit),
        Options.from_args(args),
        provider_a=args.provider_a, provider_b=args.provider_b,
        options_a=model_options(args, "-a"), options_b=model_options(args, "-b"),
    )


def _amount(text: str) -> float | int:
    try:
        return parse_amount(text)
    except NeurocorrError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _output_options(p: argparse.ArgumentParser, stdout: bool = True) -> None:
    """The output options beside --json (see neurocorr_core.outputs). Every command reads an
    output path the same way: '-' is standard output for --json and --csv."""
    std = " ('-': standard output)" if stdout else ""
    p.add_argument("--csv", metavar="OUT", help=f"write the network and per-layer scores as CSV to OUT{std}")
    p.add_argument("--report", metavar="OUT", help="write a self-contained HTML report to OUT")
    p.add_argument("--heatmap", metavar="OUT", help="write the layer x layer heatmaps to OUT (.png or .svg)")
