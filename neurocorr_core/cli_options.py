"""Command-line options shared by ``compare``, ``run``, ``layers``, ``grid``, ``predict`` and ``atlas add``.

One definition per option, so every command spells, documents and parses it the same way
(``run`` derives its experiment-file keys from the ``compare`` parser, see :mod:`neurocorr_core.config`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .errors import NeurocorrError
from .files import write_atomic
from .score import PENALTIES
from .views import VIEWS

PROBE_HELP = ("built-in name (digits, fashion-mnist[:train], mnist), .npy or IDX file, or a folder of images "
              "('DIR/?size=H,W&mean=M,M,M&std=S,S,S&mode=RGB|L'; no resizing without size=)")
#: The most values one sample of ``layers --input-shape`` may hold (512 MB of float32).
MAX_SAMPLE_VALUES = 2**27


def add_comparison_options(p: argparse.ArgumentParser, *, layers: bool, probe_required: bool = True) -> None:
    """The probe and the how-to-compare options; ``layers``: also --layers-a/--layers-b;
    ``probe_required=False``: the probe may be left out when both models are activations."""
    p.add_argument("--probe", required=probe_required, help=PROBE_HELP if probe_required else
                   PROBE_HELP + "; leave it out when both models are activations (.npz files or folders "
                   "written by 'neurocorr extract')")
    p.add_argument("--probe-limit", type=int, help="use only the first N probe samples")
    p.add_argument("--metric", default="pearson", metavar="NAME",
                   help="similarity metric plugin (default pearson): a neuron metric (pearson, spearman) or a "
                        "layer metric (cka)")
    p.add_argument("--matching", default="max", metavar="NAME",
                   help="how a neuron finds its partner (default max: the paper's best match; neuron metrics only)")
    p.add_argument("--neurons", choices=VIEWS, default="channel",
                   help="channel: spatial mean per channel; position: every C*H*W element")
    if layers:
        p.add_argument("--layers-a", help="layer globs or kind:KIND for model A (default kind:activation)")
        p.add_argument("--layers-b", help="layer globs or kind:KIND for model B (default kind:activation)")
    p.add_argument("--depth-penalty", choices=PENALTIES, default="paper",
                   help="paper (default): divide a pair's score by 1 + the distance of the two layers' "
                        "depths; none: no penalty")
    p.add_argument("--signed", action="store_true", help="match on signed r instead of |r|")
    p.add_argument("--batch-size", type=int, default=256, metavar="N",
                   help="probe samples per forward pass (default 256); lower it when memory is short")
    p.add_argument("--constant-neurons", choices=["zero", "error"],
                   help="constant (dead) neurons: score 0 (zero) or stop (error); default: the "
                        "matching's own (hungarian: error)")


def add_json_option(p: argparse.ArgumentParser, what: str) -> None:
    """``--json [OUT]`` of a listing command: as on ``compare``, OUT or ``-`` (the default when OUT
    is left out) for standard output."""
    p.add_argument("--json", nargs="?", const="-", metavar="OUT",
                   help=f"write {what} as JSON to OUT ('-', or no OUT: standard output)")


def emit_json(out: str, data: Any) -> None:
    """What :func:`add_json_option` asked for: ``data`` printed, or written to the file OUT (atomically)."""
    text = json.dumps(data, indent=2)
    if out == "-":
        print(text)
    else:
        write_atomic(out, text + "\n")


def add_model_options(p: argparse.ArgumentParser, suffix: str = "", what: str = "the model") -> None:
    """--provider, --trust-pickle and --option for one model (``suffix`` e.g. "-a")."""
    p.add_argument(f"--provider{suffix}", metavar="NAME",
                   help=f"provider plugin for {what} (default: the one that accepts it)")
    p.add_argument(f"--trust-pickle{suffix}", action="store_true",
                   help=f"allow loading {what} from a pickle (runs code from the file)")
    p.add_argument(f"--option{suffix}", action="append", metavar="KEY=VALUE", type=key_value,
                   help=f"a provider option for {what} (repeatable), e.g. layout=nhwc; a VALUE that "
                        "parses as JSON (numbers, true, lists, objects) is taken as such, else as text")


def model_options(args: argparse.Namespace, suffix: str = "") -> dict[str, Any]:
    """The provider options that parsed :func:`add_model_options` flags ask for."""
    dest = suffix.replace("-", "_")
    options = dict(getattr(args, f"option{dest}") or [])
    if getattr(args, f"trust_pickle{dest}"):
        options["trust_pickle"] = True
    return options


def key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` (an argparse type): VALUE as JSON when it parses as JSON, else as text."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY a name, e.g. layout=nhwc; got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def parse_input_shape(text: str) -> tuple[int, ...]:
    """``"1,28,28"`` -> (1, 28, 28): a per-sample shape of positive whole numbers."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise NeurocorrError(f"--input-shape {text!r} is not a shape; give the per-sample input shape as "
                             "positive whole numbers separated by commas, e.g. 1,28,28 (an image) or 64")
    dims = tuple(int(p) for p in parts)
    values = 1
    for d in dims:
        values *= d
    if values > MAX_SAMPLE_VALUES:
        raise NeurocorrError(f"--input-shape {text!r} asks for {values:,} values per sample, more than "
                             f"{MAX_SAMPLE_VALUES:,}; give the model's real input shape, or --probe")
    return dims
