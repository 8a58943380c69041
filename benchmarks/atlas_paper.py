"""Leave-one-out quality prediction on the models of the paper's MNIST-family experiment.

Trains, for each seed, the paper's five MLPs and its CNN (neurocorr-paper's trainers and
settings), measures their test accuracy and their accuracy under the paper's FGSM transfer
attack (one surrogate CNN per seed), saves them as TorchScript files, adds them to an atlas,
then runs the grid and the leave-one-out evaluation through the CLI::

    python benchmarks/atlas_paper.py --out /tmp/atlas-paper --dataset mnist --seeds 4

and prints the commands it ran with their output (docs/atlas.md shows them), then a harder test
that the CLI does not run: leave-one-architecture-out, where all seeds of the held-out model's
architecture leave the references together (a new architecture, not a new seed). With ``--quick``
the paper's quick settings are used (fewer epochs and images). Training is skipped for the
models already in the atlas, so a second run only re-evaluates.

Threads are pinned (``--threads``, default 1, set before any training as ``neurocorr reproduce
--threads`` does): with the same thread count, torch build and machine a run is bit-reproducible
(seeded initialisation, batch order, dropout); a different thread count changes the
floating-point summation order of training, and a model near a tipping point can then end up
elsewhere (net5, seed 1: .56 vs .90 accuracy between thread counts on a busy machine). Across
machines or torch builds nothing is promised beyond the seeds.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path


def train(out: Path, dataset: str, seeds: int, quick: bool) -> list[dict[str, object]]:
    """Train and measure every model not yet saved; returns one record per model."""
    import json

    import torch

    from neurocorr_paper.attack import transfer_attack
    from neurocorr_paper.data import load_split
    from neurocorr_paper.mnist_family import SEED_STRIDE
    from neurocorr_paper.settings import CNN_LAYERS, MLP_SHAPES, settings_for
    from neurocorr_paper.trainers import MLP_TRAINERS, cnn_like, torch_cnn

    settings = settings_for(dataset, quick)
    data = load_split(dataset, settings)
    attack_n = min(settings.attack_limit or len(data.x_test), len(data.x_test))
    (out / "models").mkdir(parents=True, exist_ok=True)
    records_file = out / "models" / "records.json"
    records = json.loads(records_file.read_text()) if records_file.exists() else []
    done = {(r["seed"], r["model"]) for r in records}
    for seed in range(seeds):
        if all((seed, m) in done for m in [*MLP_SHAPES, "cnn"]):
            continue
        start = time.perf_counter()
        base = seed * SEED_STRIDE  # the experiment's seeds: MLP k gets base + k, the CNN base + 10
        cnn = torch_cnn("cnn", data, settings, base + 10)
        mlps = [MLP_TRAINERS["torch"](name, hidden, data, settings, base + k)
                for k, (name, hidden) in enumerate(MLP_SHAPES.items())]
        surrogate = torch_cnn("surrogate", data, settings, base + 20)
        x_att, y_att = data.x_test[:attack_n], data.y_test[:attack_n]
        assert isinstance(surrogate.model, torch.nn.Module)
        x_adv = transfer_attack(surrogate.model, x_att, y_att, rounds=settings.attack_rounds,
                                eps=settings.attack_eps, refit=settings.refit,
                                refit_epochs=settings.refit_epochs,
                                lr=settings.cnn_lr, batch_size=settings.batch_size, seed=base + 30,
                                build=lambda: cnn_like(data, settings)).numpy()
        for m in [*mlps, cnn]:
            assert isinstance(m.model, torch.nn.Module)
            path = out / "models" / f"{m.name}_s{seed}.pt"
            m.model.eval()
            torch.jit.save(torch.jit.script(m.model), str(path))
            records.append({"seed": seed, "model": m.name, "path": str(path),
                            "layers": CNN_LAYERS if m.name == "cnn" else m.layers,
                            "accuracy": m.accuracy,
                            "attacked_accuracy": float((m.predict(x_adv) == y_att.numpy()).mean())})
        records_file.write_text(json.dumps(records, indent=2))
        print(f"seed {seed}: trained and attacked in {time.perf_counter() - start:.0f} s", flush=True)
    return records


def run(argv: list[str]) -> None:
    from neurocorr_core.cli import main

    print(f"\n$ neurocorr {shlex.join(argv)}", flush=True)
    start = time.perf_counter()
    code = main(argv)
    print(f"(exit {code}, {time.perf_counter() - start:.0f} s)", flush=True)
    if code:
        sys.exit(code)


def leave_family_out(atlas: str, dataset: str, limit: int, neurons: str) -> None:
    """Each model predicted from the models of the other architectures only."""
    import numpy as np

    from neurocorr_atlas.estimators import ESTIMATORS, FITTERS
    from neurocorr_atlas.store import Atlas
    from neurocorr_core import load_probe
    from neurocorr_scale.grid import GridConfig

    with Atlas(atlas) as at:
        models = at.models()
        names = [m.name for m in models]
        key = GridConfig(neurons=neurons).key(load_probe(f"{dataset}:test", limit=limit))
        scores = at.symmetric(key, names)
    family = np.array([n.rsplit("_s", 1)[0] for n in names])
    print("\nleave-one-architecture-out (every seed of the held-out architecture left out):")
    for measure in ("accuracy", "attacked_accuracy"):
        y = np.array([m.measurements[measure] for m in models])
        errors: dict[str, list[float]] = {e: [] for e in (*ESTIMATORS, "baseline")}
        for i in range(len(names)):
            train = np.flatnonzero(family != family[i])
            errors["baseline"].append(abs(y[i] - y[train].mean()))
            for estimator in ESTIMATORS:
                fitted = FITTERS[estimator](scores[np.ix_(train, train)], y[train])
                errors[estimator].append(abs(y[i] - fitted.predict(scores[i, train])))
        print(f"{measure}: " + "; ".join(f"{k} MAE {np.mean(v):.4f}" for k, v in errors.items()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("atlas-paper"))
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist", "digits"])
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--probe-limit", type=int, default=1000, help="probe: the first N test images")
    p.add_argument("--neurons", default="position", choices=["position", "channel"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads, pinned (default 1: reproducible)")
    args = p.parse_args()
    import torch

    if args.threads < 1:
        sys.exit(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)  # before any training: the count decides the summation order
    print(f"torch threads: {torch.get_num_threads()} (pinned)")
    records = train(args.out, args.dataset, args.seeds, args.quick)
    atlas = str(args.out / "atlas.db")
    from neurocorr_atlas.store import Atlas

    present = set()
    if (args.out / "atlas.db").exists():
        with Atlas(atlas) as at:
            present = {m.name for m in at.models()}
    for r in records:
        name = f"{r['model']}_s{r['seed']}"
        if name not in present:
            run(["atlas", "add", str(r["path"]), "--name", name, "--layers", str(r["layers"]),
                 "--accuracy", f"{r['accuracy']:.6f}", "--attacked-accuracy", f"{r['attacked_accuracy']:.6f}",
                 "--atlas", atlas])
    probe = ["--probe", f"{args.dataset}:test", "--probe-limit", str(args.probe_limit),
             "--neurons", args.neurons]
    run(["atlas", "ls", "--atlas", atlas])
    run(["grid", "--atlas", atlas, *probe, "--quiet"])
    run(["predict", "--leave-one-out", "--atlas", atlas, *probe])
    leave_family_out(atlas, args.dataset, args.probe_limit, args.neurons)


if __name__ == "__main__":
    main()
