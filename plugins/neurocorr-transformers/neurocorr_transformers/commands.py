"""``neurocorr universal-neurons``: the universal-neurons experiment (Gurnee et al. 2024) on tiny GPT-2s;
``neurocorr text-probe``: a text file as a probe file that ``--probe`` reads.

Its own command, not ``neurocorr reproduce universal-neurons``: ``reproduce`` is one command owned
by neurocorr-paper (the seed paper's experiments, with its own parser), and a plugin adds commands
through the ``neurocorr_commands`` hook, not subcommands of another plugin's command. Import-light:
torch and transformers are imported when the command runs.
"""

from __future__ import annotations

import argparse
import os

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


class TextProbeCommand(Command):
    """Texts as a ``.npy`` probe: ``--probe`` reads arrays and files, and the core has no hook for
    other probe kinds, so texts reach the CLI as the array :func:`~neurocorr_transformers.text_probe`
    makes (code points); each side's ``hf`` provider tokenizes them with its own tokenizer."""

    name = "text-probe"
    help = "turn a text file (one sample per line) into a probe file for --probe of hf models"
    examples = """
        neurocorr text-probe --docstrings 200 --out docstrings.npy   # 200 docstrings of Python's standard library
        neurocorr text-probe experiment.toml --out lines.npy   # any UTF-8 text file: a sample per non-empty line
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.description = ("Write texts as a .npy probe for Hugging Face models (provider hf): each model "
                              "tokenizes them with its own tokenizer (--option-a tokenizer=DIR to give one). Compare "
                              "with --neurons mean or first (one row per text), or token (every token: both sides "
                              "must tokenize alike, else add --option-a unit=word --option-b unit=word). "
                              "docs/transformers.md")
        parser.add_argument("texts", metavar="TEXTS", nargs="?",
                            help="a UTF-8 text file, one probe sample per non-empty line")
        parser.add_argument("--docstrings", type=int, metavar="N",
                            help="instead of TEXTS: the first N docstrings of Python's standard library, each "
                            "on one line (an offline English corpus: docs/transformers.md)")
        parser.add_argument("--out", metavar="FILE", required=True, help="the .npy probe file to write")

    def run(self, args: argparse.Namespace) -> int:
        from pathlib import Path

        import numpy as np

        from .probe import text_probe

        out = Path(args.out)
        if out.suffix.lower() != ".npy":
            raise NeurocorrError(f"--out {str(out)!r}: the probe file must end in .npy, which --probe reads")
        if (args.texts is None) == (args.docstrings is None):
            raise NeurocorrError("give either a text file (TEXTS) or --docstrings N, not " +
                                 ("both" if args.texts else "neither"))
        probe = text_probe(_docstrings(args.docstrings) if args.docstrings is not None else _file(args.texts))
        np.save(out, probe.data)
        print(f"{out}: {len(probe)} texts of up to {probe.data.shape[2]} characters")
        return 0


def _file(name: str) -> str:
    if not os.path.isfile(name):
        raise NeurocorrError(f"text file {name!r} not found; give a UTF-8 file, one sample per line")
    return name


def _docstrings(count: int) -> list[str]:
    from .lm import stdlib_docstrings

    if count < 2:
        raise NeurocorrError(f"--docstrings {count}: a probe needs at least 2 texts")
    texts = [" ".join(t.split()) for t in stdlib_docstrings()]  # one line each
    return [t for t in texts if t][:count]
