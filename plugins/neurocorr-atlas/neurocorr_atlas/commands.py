"""The atlas's commands: ``neurocorr atlas add|ls|rm``, ``neurocorr grid`` and ``neurocorr predict``
(docs/atlas.md).

``neurocorr --help`` builds every command's parser, so this module imports only what the parsers
need; the atlas file, the grid and the estimators are imported inside ``run``. The texts the
commands print are in :mod:`neurocorr_atlas.texts`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import Any

from neurocorr_core import Command, NeurocorrError
from neurocorr_core.cli_options import (
    add_comparison_options,
    add_json_option,
    add_model_options,
    emit_json,
    model_options,
)
from neurocorr_core.scale_out import add_arguments, options_from

from .estimators import ESTIMATORS  # numpy only, which the core has imported already


def trust_option(p: argparse.ArgumentParser, what: str) -> None:
    """--trust-pickle: this command may unpickle ``what``; asked each time, never stored."""
    p.add_argument("--trust-pickle", action="store_true",
                   help=f"allow loading {what} from pickles (runs code from the files; the atlas does not "
                        "remember it, give it every time)")


def atlas_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--atlas", default="atlas.db", help="atlas file or sqlite:///PATH (default atlas.db)")


def config_from(args: argparse.Namespace) -> tuple[Any, Any]:
    """The :class:`~neurocorr_scale.grid.GridConfig` and probe of parsed
    ``add_comparison_options(p, layers=False)`` options (:mod:`neurocorr_core.cli_options`)."""
    from neurocorr_core import load_probe
    from neurocorr_scale.grid import GridConfig

    if args.batch_size < 1:
        raise NeurocorrError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.probe_limit is not None and args.probe_limit < 2:
        raise NeurocorrError(f"--probe-limit must be at least 2, got {args.probe_limit}")
    probe = load_probe(args.probe, limit=args.probe_limit)
    return GridConfig(metric=args.metric, matching=args.matching, neurons=args.neurons,
                      depth_penalty=args.depth_penalty, absolute=not args.signed,
                      constant_neurons=args.constant_neurons, batch_size=args.batch_size), probe


# -- neurocorr atlas add|ls|rm ------------------------------------------------------------------------------
class AtlasCommand(Command):
    """``neurocorr atlas ACTION``: add, list and remove the reference models."""

    name = "atlas"
    help = "the reference atlas: models of known quality (docs/atlas.md)"
    examples = """
        neurocorr atlas add trusted.pt --accuracy 0.97      # a reference and what it measured
        neurocorr atlas add retrained.pt --accuracy 0.95
        neurocorr atlas add older.pt --accuracy 0.91 --measure robustness=0.40
        neurocorr atlas add spare.pt --name spare --accuracy 0.90
        neurocorr atlas ls
        neurocorr atlas rm spare
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(required=True, metavar="ACTION", dest="action")
        a = actions.add_parser("add", help="add a reference model with its measurements")
        a.add_argument("model", help="model file or module:callable reference")
        a.add_argument("--name", help="its unique name in the atlas (default: the file name without extension)")
        atlas_option(a)
        a.add_argument("--accuracy", type=float, help="measured (test) accuracy, e.g. 0.97")
        a.add_argument("--attacked-accuracy", type=float, help="accuracy under attack, e.g. 0.71")
        a.add_argument("--measure", action="append", default=[], metavar="NAME=VALUE",
                       help="any other measurement (repeatable), e.g. --measure robustness=0.4")
        a.add_argument("--layers", help="layer globs or kind:KIND of the neurons to compare (default "
                                        "kind:activation)")
        add_model_options(a)
        ls = actions.add_parser("ls", help="list the models, their measurements and the stored comparisons")
        atlas_option(ls)
        add_json_option(ls, "the models and configurations")
        rm = actions.add_parser("rm", help="remove a model with its measurements and comparisons")
        rm.add_argument("name", help="the model's name in the atlas (see neurocorr atlas ls)")
        atlas_option(rm)

    def run(self, args: argparse.Namespace) -> int:
        return {"add": self.add, "ls": self.ls, "rm": self.rm}[args.action](args)

    @staticmethod
    def add(args: argparse.Namespace) -> int:
        from neurocorr_core.models import is_reference

        from .fill import add_model
        from .store import Atlas, atlas_path

        name = args.name or (args.model.rpartition(":")[2] if is_reference(args.model) else Path(args.model).stem)
        measurements = measurements_from(args)
        new = not atlas_path(args.atlas).exists()
        try:
            with Atlas(args.atlas, create=True) as atlas:
                entry = add_model(atlas, args.model, name, measurements=measurements, layers=args.layers,
                                  provider=args.provider, options=model_options(args))
        except BaseException:
            if new:  # a model that fails to load leaves no empty atlas behind
                atlas_path(args.atlas).unlink(missing_ok=True)
            raise
        shown = ", ".join(f"{k} {v:g}" for k, v in entry.measurements.items()) or "no measurements"
        print(f"added {entry.name} ({entry.framework}; {shown}) to {atlas.path}")
        return 0

    @staticmethod
    def ls(args: argparse.Namespace) -> int:
        from .store import Atlas
        from .texts import atlas_text

        with Atlas(args.atlas) as atlas:
            models, configs = atlas.models(), atlas.configurations()
        if args.json:
            listed = [{k: v for k, v in m.__dict__.items() if k != "legacy_trust"} for m in models]
            emit_json(args.json, {"models": listed, "configurations": configs})
            return 0
        print(atlas_text(atlas.path, models, configs))
        return 0

    @staticmethod
    def rm(args: argparse.Namespace) -> int:
        from .store import Atlas

        with Atlas(args.atlas) as atlas:
            atlas.remove(args.name)
        print(f"removed {args.name} from {atlas.path}")
        return 0


def measurements_from(args: argparse.Namespace) -> dict[str, float]:
    """The measurements ``atlas add`` options give (--accuracy, --attacked-accuracy, --measure)."""
    from .store import check_measurements

    found: dict[str, Any] = {}
    if args.accuracy is not None:
        found["accuracy"] = args.accuracy
    if args.attacked_accuracy is not None:
        found["attacked_accuracy"] = args.attacked_accuracy
    for item in args.measure:
        name, eq, value = item.partition("=")
        if not eq:
            raise NeurocorrError(f"--measure {item!r}: write NAME=VALUE, e.g. --measure robustness=0.4")
        if name.strip() in found:
            raise NeurocorrError(f"measurement {name.strip()!r} is given twice")
        found[name.strip()] = value
    return check_measurements(found)


# -- neurocorr grid ---------------------------------------------------------------------------------------
class GridCommand(Command):
    """``neurocorr grid``: compare every pair of the atlas's models not yet compared."""

    name = "grid"
    help = "compare every pair of the atlas's models; resumes an interrupted run"
    examples = """
        neurocorr grid --probe digits                       # every pair of atlas.db's models
        neurocorr grid --probe digits --models trusted,retrained --quiet
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        atlas_option(parser)
        parser.add_argument("--models", help="comma-separated model names (default: all)")
        trust_option(parser, "the atlas's models")
        add_comparison_options(parser, layers=False)
        add_arguments(parser, cache_default=True)
        parser.add_argument("--quiet", action="store_true", help="no line per finished pair")

    def run(self, args: argparse.Namespace) -> int:
        from .fill import fill
        from .store import Atlas
        from .texts import grid_text

        run = options_from(args, True)  # checked before anything is opened
        config, probe = config_from(args)
        names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models else None
        with Atlas(args.atlas) as atlas:
            key = config.key(probe)
            before = len(atlas.done(key))

            result = fill(atlas, probe, config=config, names=names, on_pair=pair_printer(args.quiet),
                          trust_pickle=args.trust_pickle, **run)
            models = [m.name for m in atlas.models() if names is None or m.name in names]
            matrix = atlas.symmetric(key, models)
        print(f"grid {key} on {probe.name} ({len(probe)} samples): {len(result.computed)} pair(s) computed "
              f"in {result.seconds:.1f} s on {result.executor} ({result.shards} shard(s)), {before} already "
              "stored")
        print(grid_text(models, matrix))
        return 0


def pair_printer(quiet: bool) -> Any:
    """The ``on_pair`` callback of ``grid`` and ``predict``: one line per finished pair (none with
    ``--quiet``), on standard output."""
    def show(a: str, b: str, comparison: Any) -> None:
        if not quiet:
            print(f"  {a} vs {b}: {comparison.score.symmetric:.4f} (A->B {comparison.score.a_to_b:.4f}, "
                  f"B->A {comparison.score.b_to_a:.4f})", flush=True)
    return show


# -- neurocorr predict ------------------------------------------------------------------------------------
class PredictCommand(Command):
    """``neurocorr predict``: a new model's measures estimated from the atlas, or the references'
    leave-one-out."""

    name = "predict"
    help = "predict a new model's accuracy from the reference atlas (docs/atlas.md)"
    examples = """
        neurocorr predict candidate.pt --probe digits       # accuracy from its similarity to the references
        neurocorr predict candidate.pt --probe digits --estimator linear --json prediction.json
        neurocorr predict --leave-one-out --probe digits    # how well the atlas predicts its own models
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        p = parser
        p.add_argument("model", nargs="?", help="the new model: file or module:callable reference")
        atlas_option(p)
        p.add_argument("--name", help="the new model's name in the output (default new:MODEL)")
        p.add_argument("--layers", help="the new model's layers: globs or kind:KIND (default kind:activation)")
        add_model_options(p, what="the new model")
        reword_trust_help(p, "allow loading the new model and the references from pickles (runs code from the "
                             "files; the atlas does not remember it, give it every time)")
        p.add_argument("--estimator", choices=ESTIMATORS, default="weighted",
                       help="weighted (similarity-weighted mean, default) or linear (line through the scores "
                            "with the best reference)")
        p.add_argument("--level", type=float, default=0.9, help="level of the interval (default 0.9)")
        p.add_argument("--measure", action="append", metavar="NAME",
                       help="predict only this measure (repeatable; default: every shared measure)")
        p.add_argument("--leave-one-out", action="store_true",
                       help="instead: predict every reference from the others, with each estimator and the "
                            "baseline")
        p.add_argument("--json", metavar="OUT", help="write the result as JSON to OUT ('-': standard output)")
        add_comparison_options(p, layers=False)
        add_arguments(p, cache_default=True)
        p.add_argument("--quiet", action="store_true", help="no line per finished pair (as in grid)")

    def run(self, args: argparse.Namespace) -> int:
        from dataclasses import asdict

        from neurocorr_core.files import write_atomic
        from neurocorr_core.outputs import STDOUT, check_outputs, stdout_to_stderr

        from .predict import evaluate, predict
        from .store import Atlas
        from .texts import loo_text, report_text

        if bool(args.model) == bool(args.leave_one_out):
            raise NeurocorrError("give the new model (neurocorr predict MODEL --atlas ... --probe ...) or "
                                 "--leave-one-out, not both or neither")
        if args.json:
            check_outputs({"json": args.json})  # before the work, as 'compare' does
        run = options_from(args, True)
        config, probe = config_from(args)
        to_stdout = args.json == STDOUT
        run["on_pair"] = pair_printer(args.quiet)  # on standard error while it carries the JSON
        with Atlas(args.atlas) as atlas, stdout_to_stderr() if to_stdout else contextlib.nullcontext():
            if args.leave_one_out:
                loo = evaluate(atlas, probe, config=config, measures=args.measure, trust_pickle=args.trust_pickle,
                               **run)
                data: Any = [asdict(r) for r in loo]
                print(loo_text(loo, probe))
            else:
                report = predict(args.model, atlas, probe, name=args.name, layers=args.layers,
                                 provider=args.provider, options=model_options(args), config=config,
                                 estimator=args.estimator, level=args.level, measures=args.measure,
                                 trust_pickle=args.trust_pickle, **run)
                data = report.to_dict()
                print(report_text(report))
        if to_stdout:
            print(json.dumps(data, indent=2))
        elif args.json:
            write_atomic(Path(args.json), json.dumps(data, indent=2))
            print(f"wrote {args.json}")
        return 0


def reword_trust_help(p: argparse.ArgumentParser, text: str) -> None:
    """--trust-pickle covers the references too: say so in its help."""
    for action in p._actions:  # argparse has no public way to reword an option's help
        if "--trust-pickle" in action.option_strings:
            action.help = text
