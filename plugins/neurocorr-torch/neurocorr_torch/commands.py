"""``neurocorr demo``: the command this plugin adds to the ``neurocorr`` command line."""

from __future__ import annotations

import argparse

from neurocorr_core import Command


class DemoCommand(Command):
    name = "demo"
    help = "train the paper's five MLPs and a CNN on real digits, compare them"
    examples = """
        neurocorr demo                     # about 45 s of CPU: six models trained, five scores
        neurocorr demo --seed 1 --quiet    # other weights, no progress bar
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--seed", type=int, default=0, metavar="N",
                            help="seed of the training-set split, the weights and the batches (default 0)")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def run(self, args: argparse.Namespace) -> int:
        from .demo import run_demo  # trains torch models: imported only when the demo runs

        run_demo(seed=args.seed, progress=not args.quiet)
        return 0
