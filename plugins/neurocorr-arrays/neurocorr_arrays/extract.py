"""Feature export: the neurons a comparison sees, written to disk for the ``arrays`` provider.

``extract(model, probe, layers=..., neurons=..., out=...)`` and ``neurocorr extract`` stream the probe
through the model and write each selected layer's neurons in the chosen view, float32 (N, neurons),
one ``.npy`` per layer (memory-mapped, so a probe larger than memory passes through), beside an
index ``layers.json`` (names, order, kinds). The files are first written to a temporary folder next
to ``out`` and renamed into place once complete: an interrupted export leaves no half-written output.
``out`` ending in ``.npz`` packs the same files into one (uncompressed) archive.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from neurocorr_core.cli_options import PROBE_HELP, add_model_options, model_options
from neurocorr_core.compare import index_probe, open_model
from neurocorr_core.errors import NeurocorrError
from neurocorr_core.interfaces import Command, LayerInfo
from neurocorr_core.models import describe
from neurocorr_core.plugins import PluginManager
from neurocorr_core.probe_sources import load_probe
from neurocorr_core.selection import Selector, select_layers
from neurocorr_core.views import check_neurons, neuron_batches, neuron_count

from .provider import INDEX, META


def extract(model: object, probe: object = None, *, out: str | os.PathLike[str], layers: Selector = None,
            neurons: str = "channel", batch_size: int = 256, provider: str | None = None,
            options: dict[str, Any] | None = None, plugin_manager: PluginManager | None = None) -> Path:
    """Write ``model``'s neurons over ``probe`` to ``out`` (a folder, or a file ending in ``.npz``)
    and return its path, which :func:`~neurocorr_core.compare` reads back as a model (through the
    ``arrays`` provider of this package).

    ``layers``: globs or ``kind:KIND`` (default: every activation layer, as compare()); ``neurons``:
    the view, ``channel`` or ``position``. Comparing two exports gives the scores of comparing the
    models on the probe, with the same ``neurons`` and layers."""
    check_neurons(neurons)
    if neurons == "token":  # one row per real token, not per probe sample: the files hold N rows
        raise NeurocorrError("extract writes one row per probe sample; the token view has one row per token. "
                             "Use neurons='mean' or 'first' (one row per sequence), or compare the models directly")
    out = Path(out)
    _check_target(out)
    prov = open_model(model, provider=provider, pm=plugin_manager, **(options or {}))
    try:
        source = index_probe(prov) or (load_probe(probe) if probe is not None else None)
        if source is None:
            raise NeurocorrError("extract needs a probe: the inputs the model is run on (--probe)")
        label = describe(model)
        chosen = select_layers(prov.layers(next(source.head(2).batches(2))), layers, label)
        parts = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
        try:
            _write(prov, chosen, source, neurons, batch_size, parts, label)
            _publish(parts, out)
        finally:
            shutil.rmtree(parts, ignore_errors=True)
    finally:
        prov.close()
    return out


def _check_target(out: Path) -> None:
    if not out.parent.is_dir():
        raise NeurocorrError(f"cannot write {out}: the folder {out.parent} does not exist; create it first")
    if out.suffix.lower() != ".npz" and out.exists():
        raise NeurocorrError(f"{out} exists; give a new folder name (or a file name ending in .npz)")


def _write(prov: Any, chosen: list[LayerInfo], probe: Any, neurons: str, batch_size: int, folder: Path,
           label: str) -> None:
    """Each layer's neurons into its memory-mapped .npy, batch by batch, and the index."""
    total = len(probe)
    files = {layer.name: f"{i:03d}_{re.sub(r'[^A-Za-z0-9_.#-]+', '_', layer.name)[:80]}"
             for i, layer in enumerate(chosen)}
    maps = {layer.name: np.lib.format.open_memmap(folder / f"{files[layer.name]}.npy", mode="w+", dtype=np.float32,
                                                  shape=(total, neuron_count(layer.shape, neurons)))
            for layer in chosen}
    start = 0
    for out in neuron_batches(prov, probe.batches(batch_size), list(maps), neurons, label):
        n = len(next(iter(out.values())))
        for name, values in out.items():
            maps[name][start:start + n] = values
        start += n
    for array in maps.values():
        array.flush()
    del maps
    entries = [{**layer.to_dict(), "file": files[layer.name], "neurons": neurons} for layer in chosen]
    (folder / INDEX).write_text(json.dumps({"model": label, "probe": probe.name, "samples": total,
                                            "layers": entries}, indent=1))


def _publish(parts: Path, out: Path) -> None:
    """Rename the finished folder into place, or pack it into an .npz first (through a temporary
    file: np.lib.format writes a memory map in chunks, never the whole array at once)."""
    if out.suffix.lower() != ".npz":
        os.replace(parts, out)
        return
    index = json.loads((parts / INDEX).read_text())
    tmp = parts / "packed.npz"
    with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
        for entry in index["layers"]:
            with zf.open(f"{entry['file']}.npy", "w", force_zip64=True) as f:
                array = np.load(parts / f"{entry['file']}.npy", mmap_mode="r")
                np.lib.format.write_array(f, array, allow_pickle=False)
                del array
        with zf.open(f"{META}.npy", "w") as f:
            np.lib.format.write_array(f, np.array(json.dumps(index["layers"])), allow_pickle=False)
    os.replace(tmp, out)


class ExtractCommand(Command):
    name = "extract"
    help = "write a model's neurons over a probe to .npy files (a folder) or an .npz, for compare"
    examples = """
        neurocorr extract trusted.pt --probe digits --out trusted-neurons.npz
        neurocorr extract trusted.pt --probe digits --probe-limit 500 --out trusted-neurons  # a folder of .npy
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", help="model file or module:callable reference")
        parser.add_argument("--probe", required=True, help=PROBE_HELP)
        parser.add_argument("--probe-limit", type=int, help="use only the first N probe samples")
        parser.add_argument("--out", required=True, help="a new folder, or a file ending in .npz")
        parser.add_argument("--layers", help="layer globs or kind:KIND (default kind:activation)")
        parser.add_argument("--neurons", choices=("channel", "position"), default="channel",
                            help="channel: spatial mean per channel; position: every C*H*W element")
        parser.add_argument("--batch-size", type=int, default=256, metavar="N",
                            help="probe samples per forward pass (default 256)")
        add_model_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        out = extract(args.model, load_probe(args.probe, limit=args.probe_limit), out=args.out, layers=args.layers,
                      neurons=args.neurons, batch_size=args.batch_size, provider=args.provider,
                      options=model_options(args))
        print(f"wrote {out}", file=sys.stdout)
        return 0
