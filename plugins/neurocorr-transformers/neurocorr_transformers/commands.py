"""``neurocorr universal-neurons``: the universal-neurons experiment (Gurnee et al. 2024) on tiny GPT-2s.

Its own command, not ``neurocorr reproduce universal-neurons``: ``reproduce`` is one command owned
by neurocorr-paper (the seed paper's experiments, with its own parser), and a plugin adds commands
through the ``neurocorr_commands`` hook, not subcommands of another plugin's command. Import-light:
torch and transformers are imported when the command runs.
"""

from __future__ import annotations

import argparse

from neurocorr_core import Command, NeurocorrError


class UniversalNeuronsCommand(Command):
    name = "universal-neurons"
    help = "train tiny GPT-2s from several seeds and find their universal neurons (docs/transformers.md)"
    examples = """
        neurocorr universal-neurons --quick --seeds 2 --steps 50 --threads 1 --out universal-smoke  # a smoke run
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.description = ("Gurnee et al. 2024 (arXiv 2401.12181) on tiny GPT-2s trained here on the Python "
                              "standard library's docstrings: per MLP neuron the max correlation with every other "
                              "seed's model against a rotated-neuron baseline, the share of universal neurons per "
                              "layer, and the seed paper's network score. The documented runs: --quick --threads 1 "
                              "(about 2 minutes) and --threads 1 (about 20 minutes).")
        parser.add_argument("--quick", action="store_true",
                            help="2 layers x 64 wide, 200 steps, 150 probe texts (about a minute on 2 cores); "
                            "default: 4 layers x 128 wide, 1200 steps, "
                            "600 probe texts (20 minutes on a loaded 2-core machine with --threads 1)")
        parser.add_argument("--seeds", type=int, metavar="N", help="models trained from seeds 0..N-1 (default 3)")
        parser.add_argument("--steps", type=int, metavar="N", help="training steps per model")
        parser.add_argument("--layers", type=int, metavar="N", help="blocks per model (quick 2, default 4)")
        parser.add_argument("--width", type=int, metavar="N",
                            help="residual width, a multiple of 4 (MLP: 4 x width neurons; quick 64, default 128)")
        parser.add_argument("--threads", type=int, metavar="N",
                            help="torch threads (default: torch's own; 1 is far faster on a loaded machine)")
        parser.add_argument("--out", metavar="DIR",
                            help="output folder (default neurocorr-universal-neurons/quick or /full)")

    def run(self, args: argparse.Namespace) -> int:
        if args.seeds is not None and args.seeds < 2:
            raise NeurocorrError(f"--seeds {args.seeds}: universality needs at least 2 models; give --seeds 3 or more")
        for flag in ("layers", "width"):
            value = getattr(args, flag)
            if value is not None and (value < 1 or (flag == "width" and value % 4)):
                raise NeurocorrError(f"--{flag} {value}: give a positive number" + (", a multiple of 4 (the "
                                     "attention heads)" if flag == "width" else ""))
        if args.threads is not None and args.threads < 1:
            raise NeurocorrError(f"--threads {args.threads}: give 1 or more")
        if args.steps is not None and args.steps < 1:
            raise NeurocorrError(f"--steps {args.steps}: give a positive number of training steps")
        from .universal import main

        main(args.quick, seeds=args.seeds, steps=args.steps, out=args.out, threads=args.threads,
             layers=args.layers, width=args.width)
        return 0
