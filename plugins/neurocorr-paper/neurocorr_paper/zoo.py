"""``neurocorr reproduce zoo``: does the paper's score predict a model's accuracy, and better than what?

A zoo of small models (MLPs and CNNs of several depths and widths, seeds, checkpoints along
training, label noise, smaller training sets, dropout on and off) is trained on one data set;
each model gets its clean test accuracy and its accuracy under a transfer attack (iterated FGSM
from a surrogate CNN trained apart). The references are trusted models (trained on all
training images with clean labels): the most accurate of them overall, and the most accurate of
each family (CNN, MLP). Every other model is then described by competing predictors, all
measured against a reference on the same unlabelled probe images (1,000 test images; fewer
where the test split is smaller):

- the paper's network score (Pearson, best match, depth penalty): A->B (model -> reference),
  B->A and symmetric, also without the depth penalty, and A->B on the first 10 (the paper's
  probe) and 100 probe images;
- the symmetric score with Spearman instead of Pearson; linear CKA of the concatenated
  hidden representations (Kornblith et al. 2019);
- agreement: the share of probe images where the model predicts the reference's class
  (Jiang et al. 2022, "Assessing Generalization of SGD via Disagreement");
- the control: the paper's A->B score of the same architecture at initialisation (same seed);
- trivial baselines: parameter count, depth, training loss.

Each predictor's rank correlation with accuracy, attacked accuracy and the drop is reported
with a bootstrap interval and a permutation p (:mod:`.stats`), overall and within
architecture, and leave-one-architecture-out against the mean; against each family's
reference, over all models and over each family's models alone. Results are cached per model
on disk (``OUT/models/ID.json`` and the weights), so a run that is killed resumes where it
stopped; predictors are cached per model, reference and probe size (``OUT/predictors/``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neurocorr_core import Executor, compare

from . import stats, zoo_atlas
from .attack import fgsm
from .data import load_split
from .output import to_csv, to_json, write_text
from .settings import FULL

DATASETS = ("fashion-mnist", "digits")
TARGETS = ("accuracy", "attacked", "drop")
#: Predictors and the sign that means "predicts better" (training loss: lower is better).
PREDICTORS = ("score_ab", "score_ba", "score_sym", "score_ab_nopenalty", "score_sym_nopenalty", "score_ab_10",
              "score_ab_100", "spearman_sym", "cka", "agreement", "untrained_ab", "params", "depth", "train_loss")
#: The smaller probes (the first N probe images) on which score A->B is measured as well.
SMALL_PROBES = (10, 100)
#: Predictors measured against a reference (the rest describe the model alone).
RELATIVE = PREDICTORS[:11]
FAMILIES = ("cnn", "mlp")
#: The references: the most accurate trusted model overall, and of each family.
REFERENCES = ("overall", *FAMILIES)


@dataclass(frozen=True)
class Spec:
    """One training run; every epoch in ``checkpoints`` is a model of the zoo."""

    family: str  # mlp or cnn
    shape: tuple[int, ...]  # MLP hidden widths, or CNN (conv1 channels, conv2 channels)
    seed: int
    checkpoints: tuple[int, ...]
    dropout: bool = False
    noise: float = 0.0  # share of training labels replaced by random ones
    train_frac: float = 1.0

    @property
    def arch(self) -> str:
        return f"{self.family}-{'x'.join(map(str, self.shape))}" + ("-drop" if self.dropout else "")

    @property
    def run_id(self) -> str:
        extra = f"-noise{self.noise:g}" if self.noise else ""
        extra += f"-frac{self.train_frac:g}" if self.train_frac < 1 else ""
        return f"{self.arch}{extra}-s{self.seed}"


@dataclass(frozen=True)
class ZooSettings:
    train_limit: int | None
    test_limit: int | None
    probe: int
    attack_n: int
    attack_rounds: int
    specs: tuple[Spec, ...]
    mlp_lr: float = 0.1
    cnn_lr: float = 0.002
    batch_size: int = 128
    attack_eps: float = 10 / 255
    resamples: int = 2000


def _grid(archs: Sequence[tuple[str, tuple[int, ...], bool]], seeds: Sequence[int], checkpoints: tuple[int, ...],
          variants: Sequence[dict[str, Any]]) -> tuple[Spec, ...]:
    specs = [Spec(f, s, seed, checkpoints, dropout=d) for f, s, d in archs for seed in seeds]
    specs += [Spec(v["family"], v["shape"], v.get("seed", 0), checkpoints, dropout=v.get("dropout", False),
                   noise=v.get("noise", 0.0), train_frac=v.get("train_frac", 1.0)) for v in variants]
    return tuple(specs)


def zoo_settings(dataset: str, quick: bool) -> ZooSettings:
    """The zoo's grid: ``--quick`` about 30 models (a smoke run, minutes), else about 150."""
    cnn: tuple[int, ...] = (8, 16) if dataset == "digits" else (16, 32)
    if quick:
        archs = [("mlp", (64,), False), ("mlp", (32, 32), False), ("mlp", (16,) * 4, False),
                 ("cnn", (4, 8), False), ("cnn", cnn, False)]
        variants = [{"family": "mlp", "shape": (64,), "noise": 0.4}, {"family": "cnn", "shape": (4, 8), "noise": 0.4},
                    {"family": "mlp", "shape": (64,), "train_frac": 0.2},
                    {"family": "mlp", "shape": (64,), "dropout": True}]
        epochs: tuple[int, ...] = (1, 4) if dataset != "digits" else (2, 15)
        return ZooSettings(train_limit=6000, test_limit=1000, probe=300, attack_n=500, attack_rounds=3,
                           specs=_grid(archs, (0, 1), epochs, variants))
    archs = [("mlp", (32,), False), ("mlp", (128,), False), ("mlp", (64, 64), False), ("mlp", (32,) * 4, False),
             ("mlp", (128,), True), ("mlp", (64, 64), True), ("cnn", (4, 8), False), ("cnn", cnn, False)]
    variants = [{"family": f, "shape": s, "noise": n, "seed": 0}
                for f, s in (("mlp", (128,)), ("mlp", (64, 64)), ("cnn", (4, 8))) for n in (0.2, 0.5)]
    variants += [{"family": f, "shape": s, "train_frac": t, "seed": 0}
                 for f, s in (("mlp", (128,)), ("mlp", (64, 64)), ("cnn", (4, 8))) for t in (0.05, 0.25)]
    epochs = (1, 3, 8) if dataset != "digits" else (3, 10, 40)
    return ZooSettings(train_limit=20000, test_limit=5000, probe=1000, attack_n=2000, attack_rounds=5,
                       specs=_grid(archs, (0, 1, 2, 3, 4), epochs, variants))


class ZooMLP(nn.Sequential):
    """Flatten, (Linear, ReLU) per hidden width, optional dropout 0.5, Linear 10."""

    def __init__(self, inputs: int, hidden: Sequence[int], dropout: bool) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = inputs
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        super().__init__(*layers, *([nn.Dropout(0.5)] if dropout else []), nn.Linear(width, 10))


class ZooCNN(nn.Module):
    """(conv 3x3 -> maxpool 2 -> ReLU) twice, dense 64, dense 10 (the paper's CNN, narrower);
    dropout 0.5 after the dense layer when ``dropout``."""

    def __init__(self, channels: tuple[int, ...], side: int, padding: int, dropout: bool) -> None:
        super().__init__()
        c1, c2 = channels
        self.block1 = nn.Sequential(nn.Conv2d(1, c1, 3, padding=padding), nn.MaxPool2d(2), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(c1, c2, 3, padding=padding), nn.MaxPool2d(2), nn.ReLU())
        out = ((side + 2 * padding - 2) // 2 + 2 * padding - 2) // 2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c2 * out * out, 64), nn.ReLU(),
                                  *([nn.Dropout(0.5)] if dropout else []), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block2(self.block1(x)))


def build(spec: Spec, side: int) -> nn.Module:
    torch.manual_seed(spec.seed * 7919 + 17)
    if spec.family == "mlp":
        return ZooMLP(side * side, spec.shape, spec.dropout)
    return ZooCNN(spec.shape, side, 1 if side < 16 else 0, spec.dropout)


def layers_of(spec: Spec) -> str:
    return "kind:relu" if spec.family == "mlp" else "block1,block2"


def depth_of(spec: Spec) -> int:
    return len(spec.shape) + (1 if spec.family == "cnn" else 0) + 1  # hidden (conv) layers + dense + output


def _noisy_labels(y: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    if not noise:
        return y
    rng = np.random.default_rng(seed + 99)
    flip = rng.random(len(y)) < noise
    out = y.clone()
    out[torch.from_numpy(flip)] = torch.from_numpy(rng.integers(0, 10, int(flip.sum())))
    return out


def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[s:s + 1024]) for s in range(0, len(x), 1024)])


def train_run(spec: Spec, data: Any, zs: ZooSettings, folder: Path, adversarial: np.ndarray,
              attack_labels: np.ndarray) -> list[dict[str, Any]]:
    """Train one run, saving each checkpoint's weights and record; checkpoints already on disk
    are read back (the run is retrained only when one is missing)."""
    if _is_trained(spec, folder):
        return [json.loads((folder / f"{spec.run_id}@{e}.json").read_text()) for e in spec.checkpoints]
    side = int(data.x_train.shape[-1])
    model = build(spec, side)
    keep = int(len(data.x_train) * spec.train_frac)
    x, y = data.x_train[:keep], _noisy_labels(data.y_train[:keep], spec.noise, spec.seed)
    opt = (torch.optim.SGD(model.parameters(), lr=zs.mlp_lr) if spec.family == "mlp"
           else torch.optim.Adam(model.parameters(), lr=zs.cnn_lr))
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(spec.seed)
    records = []
    for epoch in range(1, max(spec.checkpoints) + 1):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x), zs.batch_size):
            idx = order[s:s + zs.batch_size]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
        if epoch in spec.checkpoints:
            records.append(_checkpoint(spec, epoch, model, data, x[:2000], y[:2000], folder, adversarial,
                                       attack_labels))
    return records


def _checkpoint(spec: Spec, epoch: int, model: nn.Module, data: Any, x_train: torch.Tensor, y_train: torch.Tensor,
                folder: Path, adversarial: np.ndarray, attack_labels: np.ndarray) -> dict[str, Any]:
    name = f"{spec.run_id}@{epoch}"
    acc = float((_predict(model, data.x_test).argmax(1) == data.y_test).float().mean())
    attacked = float((_predict(model, torch.from_numpy(adversarial)).argmax(1).numpy() == attack_labels).mean())
    clean = float((_predict(model, data.x_test[:len(attack_labels)]).argmax(1).numpy() == attack_labels).mean())
    loss = float(nn.functional.cross_entropy(_predict(model, x_train), y_train))
    record = {"id": name, "run": spec.run_id, "arch": spec.arch, "family": spec.family, "shape": list(spec.shape),
              "seed": spec.seed, "epoch": epoch, "dropout": spec.dropout, "noise": spec.noise,
              "train_frac": spec.train_frac, "accuracy": acc, "attack_clean": clean, "attacked": attacked,
              "drop": clean - attacked, "train_loss": loss, "params": sum(p.numel() for p in model.parameters()),
              "depth": depth_of(spec)}
    torch.save(model.state_dict(), folder / f"{name}.pt")
    write_text(folder / f"{name}.json", json.dumps(record))  # last: its presence marks the model done
    return record


def load_model(record: dict[str, Any], spec: Spec, side: int, folder: Path) -> nn.Module:
    model = build(spec, side)
    model.load_state_dict(torch.load(folder / f"{record['id']}.pt", weights_only=True))
    model.eval()
    return model


def make_attack(data: Any, zs: ZooSettings, folder: Path, padding: int) -> tuple[np.ndarray, np.ndarray]:
    """Iterated FGSM (``attack_rounds`` steps of eps 10/255, no refit) from a surrogate paper
    CNN trained 2 epochs on the training images (seeded, not part of the zoo); cached."""
    path = folder / "attack.npz"
    n = min(zs.attack_n, len(data.x_test))
    if path.exists():
        cached = np.load(path)
        return cached["adversarial"], cached["labels"]
    from .trainers import PaperCNN

    torch.manual_seed(424242)
    surrogate = PaperCNN(side=int(data.x_train.shape[-1]), padding=padding)
    opt = torch.optim.Adam(surrogate.parameters(), lr=zs.cnn_lr)
    gen = torch.Generator().manual_seed(424242)
    for _ in range(2):
        surrogate.train()
        order = torch.randperm(len(data.x_train), generator=gen)
        for s in range(0, len(order), zs.batch_size):
            idx = order[s:s + zs.batch_size]
            opt.zero_grad()
            nn.functional.cross_entropy(surrogate(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
    x, y = data.x_test[:n], data.y_test[:n]
    for _ in range(zs.attack_rounds):
        x = fgsm(surrogate, x, y, zs.attack_eps)
    np.savez(path, adversarial=x.numpy(), labels=y.numpy())
    return x.numpy(), y.numpy()


def _hidden(model: nn.Module, spec: Spec, x: torch.Tensor) -> np.ndarray:
    """The neurons the score compares (MLP ReLU outputs; CNN conv blocks, every position),
    concatenated: (samples, neurons) float64, for linear CKA."""
    outs: list[torch.Tensor] = []
    children = dict(model.named_children())
    mods = ([m for m in model.modules() if isinstance(m, nn.ReLU)] if spec.family == "mlp"
            else [children["block1"], children["block2"]])
    if spec.family == "mlp":
        mods = mods[:len(spec.shape)]
    hooks = [m.register_forward_hook(lambda _m, _i, o: outs.append(o.detach().flatten(1))) for m in mods]
    try:
        _predict(model, x)
    finally:
        for h in hooks:
            h.remove()
    return torch.cat(outs, 1).double().numpy()


def linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019): ||B_c^T A_c||_F^2 / (||A_c^T A_c||_F ||B_c^T B_c||_F),
    computed through the n x n Gram matrices (n samples < neurons here)."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    ka, kb = a @ a.T, b @ b.T
    denom = math.sqrt(float((ka * ka).sum()) * float((kb * kb).sum()))
    return float((ka * kb).sum()) / denom if denom > 0 else math.nan


def predictors(model: nn.Module, spec: Spec, ref: nn.Module, ref_spec: Spec, probe: torch.Tensor,
               side: int) -> dict[str, float]:
    """Every predictor of one model against the reference (see the module text)."""
    images = probe.numpy()
    kw: dict[str, Any] = {"neurons": "position", "layers_a": layers_of(spec), "layers_b": layers_of(ref_spec)}
    paper = compare(model, ref, images, depth_penalty="paper", **kw).score
    plain = compare(model, ref, images, depth_penalty="none", **kw).score
    small = {f"score_ab_{n}": compare(model, ref, images[:n], depth_penalty="paper", **kw).score.a_to_b
             for n in SMALL_PROBES}
    spear = compare(model, ref, images, depth_penalty="paper", metric="spearman", **kw).score
    untrained = compare(build(spec, side), ref, images, depth_penalty="paper", **kw).score
    agree = float((_predict(model, probe).argmax(1) == _predict(ref, probe).argmax(1)).float().mean())
    return {"score_ab": paper.a_to_b, "score_ba": paper.b_to_a, "score_sym": paper.symmetric,
            "score_ab_nopenalty": plain.a_to_b, "score_sym_nopenalty": plain.symmetric, **small,
            "spearman_sym": spear.symmetric,
            "cka": linear_cka(_hidden(model, spec, probe), _hidden(ref, ref_spec, probe)),
            "agreement": agree, "untrained_ab": untrained.a_to_b}


@dataclass
class ZooRun:
    """A zoo's models and predictors. ``records``: one per model, with its predictors against the
    overall reference (``reference``, a model id); ``references``: the id of each of
    :data:`REFERENCES`; ``versus``: reference id -> model id -> that model's predictors against it
    (:data:`RELATIVE`); ``probe``: the probe images the predictors used."""

    dataset: str
    settings: ZooSettings
    records: list[dict[str, Any]]
    reference: str
    seconds: float
    threads: int
    references: dict[str, str] = field(default_factory=dict)
    versus: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    probe: int = 0
    anchors: list[str] = field(default_factory=list)
    anchor_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    anchor_comparisons: int = 0


def pick_references(records: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The most accurate trusted model (all training images, clean labels) overall and of each
    family; ties go to the larger id, so a re-run picks the same models."""
    trusted = [r for r in records if not r["noise"] and r["train_frac"] == 1]
    refs: dict[str, str] = {}
    for key in REFERENCES:
        pool = [r for r in trusted if key in ("overall", r["family"])]
        if not pool:
            raise ValueError(f"the zoo has no trusted {key} model to serve as a reference")
        refs[key] = max(pool, key=lambda r: (r["accuracy"], r["id"]))["id"]
    return refs


def _versus(ref_id: str, records: Sequence[dict[str, Any]], specs: dict[str, Spec], side: int, models_dir: Path,
            pred_dir: Path, probe: torch.Tensor, progress: Callable[[str], None]) -> dict[str, dict[str, float]]:
    """Every model's predictors against one reference, read from ``pred_dir`` when a cached
    file holds all of :data:`RELATIVE` (older caches lack some and are recomputed)."""
    by_id = {r["id"]: r for r in records}
    ref_spec = specs[by_id[ref_id]["run"]]
    ref = load_model(by_id[ref_id], ref_spec, side, models_dir)
    out: dict[str, dict[str, float]] = {}
    for k, r in enumerate(records):
        cache = pred_dir / f"{r['id']}__vs__{ref_id}__probe{len(probe)}.json"
        if cache.exists():
            values = json.loads(cache.read_text())
            if all(p in values for p in RELATIVE):
                out[r["id"]] = values
                continue
        if k % 10 == 0:
            progress(f"predictors against {ref_id}: {k + 1}/{len(records)}")
        spec = specs[r["run"]]
        out[r["id"]] = predictors(load_model(r, spec, side, models_dir), spec, ref, ref_spec, probe, side)
        write_text(cache, json.dumps(out[r["id"]]))
    return out


def _is_trained(spec: Spec, folder: Path) -> bool:
    return all((folder / f"{spec.run_id}@{e}.json").exists() and (folder / f"{spec.run_id}@{e}.pt").exists()
               for e in spec.checkpoints)


def train_task(threads: int, spec: Spec, data: Any, zs: ZooSettings, folder: Path, adversarial: np.ndarray,
               attack_labels: np.ndarray) -> list[dict[str, Any]]:
    """:func:`train_run` as an executor task: a worker process gets this run's torch thread count
    first (a worker's default would be every core, which is slow on a shared CPU)."""
    torch.set_num_threads(threads)
    return train_run(spec, data, zs, folder, adversarial, attack_labels)


def train_all(specs: Sequence[Spec], data: Any, zs: ZooSettings, folder: Path, adversarial: np.ndarray,
              attack_labels: np.ndarray, *, executor: Executor | None = None,
              progress: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Every run's checkpoint records, in grid order. Runs found on disk are read back; the others
    are training tasks on ``executor`` (None: one after another in this process), which write each
    checkpoint as it is reached, so a run killed midway retrains only the unfinished runs.
    Each run seeds itself (:func:`build`), so the order and place they run in change nothing."""
    done = {s.run_id: train_run(s, data, zs, folder, adversarial, attack_labels) for s in specs
            if _is_trained(s, folder)}
    todo = [s for s in specs if s.run_id not in done]
    progress(f"training runs: {len(done)} of {len(specs)} found in {folder}, {len(todo)} to train"
             + (f" on {executor.describe()}" if executor and todo else ""))
    if executor is None:
        for k, spec in enumerate(todo):
            progress(f"[{k + 1}/{len(todo)}] {spec.run_id}")
            done[spec.run_id] = train_run(spec, data, zs, folder, adversarial, attack_labels)
    elif todo:
        shared = executor.put(data)  # sent once, not once per task
        threads = torch.get_num_threads()
        handles = {s.run_id: executor.submit(train_task, threads, s, shared, zs, folder, adversarial, attack_labels)
                   for s in todo}
        for k, (run_id, records) in enumerate(executor.as_completed(handles)):
            progress(f"[{k + 1}/{len(todo)}] {run_id}")
            done[run_id] = records
    return [r for s in specs for r in done[s.run_id]]


def run(dataset: str, quick: bool, out: Path, *, progress: Callable[[str], None] = print,
        executor: Executor | None = None) -> ZooRun:
    """Train (or read back) every model, pick the references, measure the predictors.
    ``executor``: where the training runs go (see :func:`train_all`)."""
    start = time.perf_counter()
    zs = zoo_settings(dataset, quick)
    base = FULL["digits" if dataset == "digits" else "fashion-mnist"]
    data = load_split(dataset, dataclasses.replace(base, train_limit=zs.train_limit, test_limit=zs.test_limit))
    side = int(data.x_train.shape[-1])
    models_dir, pred_dir = out / "models", out / "predictors"
    models_dir.mkdir(parents=True, exist_ok=True)
    pred_dir.mkdir(parents=True, exist_ok=True)
    adversarial, labels = make_attack(data, zs, out, 1 if side < 16 else 0)
    specs = {s.run_id: s for s in zs.specs}
    records = train_all(zs.specs, data, zs, models_dir, adversarial, labels, executor=executor, progress=progress)
    refs = pick_references(records)
    probe = data.x_test[:zs.probe]
    versus = {ref_id: _versus(ref_id, records, specs, side, models_dir, pred_dir, probe, progress)
              for ref_id in dict.fromkeys(refs.values())}
    for r in records:
        r.update(versus[refs["overall"]][r["id"]])
    anchors = zoo_atlas.pick_anchors(records, refs)
    known = {ref_id: {m: v["score_sym"] for m, v in values.items()} for ref_id, values in versus.items()}
    measure = _anchor_measure(records, specs, side, models_dir, probe)
    scores, computed = zoo_atlas.anchor_scores(records, anchors, measure, pred_dir, f"probe{len(probe)}", known,
                                               progress)
    return ZooRun(dataset, zs, records, refs["overall"], time.perf_counter() - start, torch.get_num_threads(),
                  refs, versus, len(probe), anchors, scores, computed)


def _anchor_measure(records: Sequence[dict[str, Any]], specs: dict[str, Spec], side: int, models_dir: Path,
                    probe: torch.Tensor) -> zoo_atlas.Measure:
    """The paper's symmetric score (as ``score_sym``) of one model against some anchors; the
    anchors are loaded once."""
    by_id = {r["id"]: r for r in records}
    images = probe.numpy()
    loaded: dict[str, nn.Module] = {}

    def measure(model_id: str, anchor_ids: Sequence[str]) -> dict[str, float]:
        spec = specs[by_id[model_id]["run"]]
        model = load_model(by_id[model_id], spec, side, models_dir)
        out = {}
        for a in anchor_ids:
            a_spec = specs[by_id[a]["run"]]
            if a not in loaded:
                loaded[a] = load_model(by_id[a], a_spec, side, models_dir)
            out[a] = compare(model, loaded[a], images, depth_penalty="paper", neurons="position",
                             layers_a=layers_of(spec), layers_b=layers_of(a_spec)).score.symmetric
        return out
    return measure


def _value(record: dict[str, Any], against: dict[str, dict[str, float]], name: str) -> float:
    return float(against[record["id"]][name] if name in RELATIVE else record[name])


def _tables(rows: Sequence[dict[str, Any]], against: dict[str, dict[str, float]], resamples: int) -> dict[str, Any]:
    """The correlations of every predictor (against one reference) with every target over
    ``rows``: overall, pooled within architecture, per architecture, leave-one-architecture-out."""
    archs = [r["arch"] for r in rows]
    overall, within, per_arch, logo = [], [], [], []
    for pred in PREDICTORS:
        x = [_value(r, against, pred) for r in rows]
        for target in TARGETS:
            y = [float(r[target]) for r in rows]
            sp = stats.rank_test(x, y, "spearman", resamples=resamples, boot=1000)
            kd = stats.rank_test(x, y, "kendall", resamples=resamples // 2, boot=300)
            overall.append({"predictor": pred, "target": target, "n": sp.n, "rho": sp.value, "rho_low": sp.low,
                            "rho_high": sp.high, "rho_p": sp.p, "tau": kd.value, "tau_low": kd.low, "tau_high": kd.high,
                            "tau_p": kd.p})
            pooled = stats.pooled_within(x, y, archs, resamples=resamples)
            within.append({"predictor": pred, "target": target, "groups": pooled.groups, "n": pooled.n,
                           "rho_within": pooled.value, "p": pooled.p})
            lg = stats.logo_error(x, y, archs)
            logo.append({"predictor": pred, "target": target, "groups": lg.groups, "mae_line": lg.mae_line,
                         "mae_mean": lg.mae_mean, "wins": lg.wins, "p": lg.p})
            if target == "accuracy":
                for arch in dict.fromkeys(archs):
                    xs = [v for v, a in zip(x, archs, strict=True) if a == arch]
                    ys = [v for v, a in zip(y, archs, strict=True) if a == arch]
                    per_arch.append({"predictor": pred, "arch": arch, "n": len(xs),
                                     "rho": stats.correlation(xs, ys),
                                     "p": stats.permutation_p(xs, ys, resamples=resamples)
                                     if len(xs) >= 3 else math.nan})
    return {"overall": overall, "within": within, "per_arch": per_arch, "logo": logo}


def _family_tables(result: ZooRun) -> list[dict[str, Any]]:
    """Against each family's reference: Spearman rho (bootstrap interval, permutation p) and the
    pooled within-architecture rho of every predictor with every target, over all models and
    over each family's models alone (the reference left out)."""
    rows_out = []
    resamples = result.settings.resamples
    for key in FAMILIES:
        ref_id = result.references[key]
        against = result.versus[ref_id]
        for subset in ("all", *FAMILIES):
            rows = [r for r in result.records if r["id"] != ref_id and subset in ("all", r["family"])]
            archs = [r["arch"] for r in rows]
            for pred in PREDICTORS:
                x = [_value(r, against, pred) for r in rows]
                for target in TARGETS:
                    y = [float(r[target]) for r in rows]
                    sp = stats.rank_test(x, y, "spearman", resamples=resamples, boot=1000)
                    pooled = stats.pooled_within(x, y, archs, resamples=resamples)
                    rows_out.append({"reference": key, "reference_id": ref_id, "models": subset, "predictor": pred,
                                     "target": target, "n": sp.n, "rho": sp.value, "rho_low": sp.low,
                                     "rho_high": sp.high, "rho_p": sp.p, "rho_within": pooled.value,
                                     "p_within": pooled.p})
    return rows_out


def analyse(result: ZooRun) -> dict[str, Any]:
    """Correlations of every predictor with every target against the overall reference:
    overall (Spearman and Kendall with bootstrap 95% intervals and permutation p), pooled within
    architecture, per architecture (Spearman), and leave-one-architecture-out line-vs-mean
    errors; and against each family's reference (``families``, see :func:`_family_tables`)."""
    rows = [r for r in result.records if r["id"] != result.reference]
    tables = _tables(rows, result.versus[result.reference], result.settings.resamples)
    tables["families"] = _family_tables(result)
    tables["atlas_predictions"] = zoo_atlas.predict_folds(result.records, result.anchor_scores, result.anchors,
                                                          TARGETS, exclude=result.reference)
    tables["atlas"] = zoo_atlas.compare_errors(tables["atlas_predictions"], TARGETS,
                                               resamples=result.settings.resamples)
    return tables


def render(result: ZooRun, analysis: dict[str, Any]) -> dict[str, bytes | str]:
    columns = ["id", "arch", "family", "seed", "epoch", "dropout", "noise", "train_frac", "accuracy", "attack_clean",
               "attacked", "drop", *PREDICTORS]
    models = [{c: r[c] for c in columns} for r in result.records]
    document = {"experiment": "zoo", "dataset": result.dataset, "reference": result.reference,
                "references": result.references, "probe": result.probe,
                "settings": dataclasses.asdict(result.settings), "seconds": result.seconds, "threads": result.threads,
                "models": len(result.records), **analysis, "records": result.records, "versus": result.versus,
                "anchors": result.anchors, "anchor_scores": result.anchor_scores}
    return {"models.csv": to_csv(models), "correlations.csv": to_csv(analysis["overall"]),
            "within_architecture.csv": to_csv(analysis["within"]), "per_architecture.csv": to_csv(analysis["per_arch"]),
            "leave_one_architecture_out.csv": to_csv(analysis["logo"]), "families.csv": to_csv(analysis["families"]),
            "atlas_leave_one_architecture_out.csv": to_csv(analysis["atlas"]),
            "atlas_predictions.csv": to_csv(analysis["atlas_predictions"]),
            "results.json": to_json(document),
            "tables.md": markdown(result, analysis), "scatter.png": scatter(result)}


def _f(v: float, digits: int = 2, sign: bool = True) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:{'+' if sign else ''}.{digits}f}"


def markdown(result: ZooRun, analysis: dict[str, Any]) -> str:
    """The study's tables (docs/study.md is written from them): composition, correlations with
    each target, within and per architecture, leave-one-architecture-out."""
    rows = [r for r in result.records if r["id"] != result.reference]
    refs = ", ".join(f"{k} {v}" for k, v in result.references.items())
    out = [f"Zoo on {result.dataset}: {len(result.records)} models; references (the most accurate trusted model): "
           f"{refs}; the overall one is left out of the main tables ({len(rows)} models). Probe: "
           f"{result.probe} test images (score_ab_10, score_ab_100: the first 10, 100). This invocation took "
           f"{result.seconds:.0f} s (models and predictors found in the cache are read back, not recomputed).", "",
           "| architecture | models | seeds | checkpoints (epochs) | label noise | train fraction | accuracy min-max |",
           "|---|---|---|---|---|---|---|"]
    for arch in dict.fromkeys(r["arch"] for r in result.records):
        mine = [r for r in result.records if r["arch"] == arch]
        acc = [r["accuracy"] for r in mine]
        out.append(f"| {arch} | {len(mine)} | {len({r['seed'] for r in mine})} | "
                   f"{', '.join(map(str, sorted({r['epoch'] for r in mine})))} | "
                   f"{', '.join(f'{v:g}' for v in sorted({r['noise'] for r in mine}))} | "
                   f"{', '.join(f'{v:g}' for v in sorted({r['train_frac'] for r in mine}))} | "
                   f"{min(acc):.3f}-{max(acc):.3f} |")
    for target in TARGETS:
        out += ["", f"Against **{target}**: Spearman rho [95% bootstrap CI] (two-sided permutation p), Kendall tau "
                "(p); within architecture: pooled rho (p, shuffles within architectures); leave-one-architecture-"
                "out: MAE of a line fitted on the other architectures vs their mean (architectures where the line "
                "wins; exact sign-flip p)", "",
                "| predictor | rho [95% CI] | p | tau | p | within rho | p | LOAO MAE line / mean | wins | p |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for pred in PREDICTORS:
            o = next(r for r in analysis["overall"] if r["predictor"] == pred and r["target"] == target)
            w = next(r for r in analysis["within"] if r["predictor"] == pred and r["target"] == target)
            lg = next(r for r in analysis["logo"] if r["predictor"] == pred and r["target"] == target)
            out.append(f"| {pred} | {_f(o['rho'])} [{_f(o['rho_low'])}, {_f(o['rho_high'])}] "
                       f"| {_f(o['rho_p'], 4, False)} | {_f(o['tau'])} | {_f(o['tau_p'], 4, False)} "
                       f"| {_f(w['rho_within'])} | {_f(w['p'], 4, False)} "
                       f"| {_f(lg['mae_line'], 4, False)} / {_f(lg['mae_mean'], 4, False)} "
                       f"| {lg['wins']}/{lg['groups']} | {_f(lg['p'], 3, False)} |")
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    out += ["", "Spearman rho with accuracy inside each architecture (n models; permutation p in brackets):", "",
            "| predictor | " + " | ".join(archs) + " |", "|---" * (len(archs) + 1) + "|"]
    for pred in PREDICTORS:
        cells = []
        for arch in archs:
            r = next(x for x in analysis["per_arch"] if x["predictor"] == pred and x["arch"] == arch)
            cells.append(f"{_f(r['rho'])} ({_f(r['p'], 2, False)}, n {r['n']})")
        out.append(f"| {pred} | " + " | ".join(cells) + " |")
    out += _family_markdown(result, analysis["families"])
    out += zoo_atlas.markdown(analysis["atlas"], result.anchors, result.anchor_comparisons)
    return "\n".join(out) + "\n"


def _family_markdown(result: ZooRun, families: list[dict[str, Any]]) -> list[str]:
    combos = [(key, subset) for key in FAMILIES for subset in ("all", *FAMILIES)]
    out: list[str] = []
    for target in TARGETS:
        out += ["", f"Against each family's reference ({', '.join(f'{k} {result.references[k]}' for k in FAMILIES)}),"
                f" **{target}**: Spearman rho (permutation p) / pooled within-architecture rho (p), over all models "
                "or one family's (the reference left out)", "",
                "| predictor | " + " | ".join(f"{k} ref, {s} ({_n(families, k, s)})" for k, s in combos) + " |",
                "|---" * (len(combos) + 1) + "|"]
        for pred in PREDICTORS:
            cells = []
            for key, subset in combos:
                r = next(x for x in families if (x["reference"], x["models"], x["predictor"], x["target"])
                         == (key, subset, pred, target))
                cells.append(f"{_f(r['rho'])} ({_f(r['rho_p'], 3, False)}) / {_f(r['rho_within'])} "
                             f"({_f(r['p_within'], 3, False)})")
            out.append(f"| {pred} | " + " | ".join(cells) + " |")
    return out


def _n(families: list[dict[str, Any]], key: str, subset: str) -> str:
    return f"n {next(x['n'] for x in families if (x['reference'], x['models']) == (key, subset))}"


def scatter(result: ZooRun) -> bytes:
    """Accuracy against four predictors, one colour per architecture."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result.records if r["id"] != result.reference]
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    panels = [("score_sym", "paper score, symmetric"), ("score_ab", "paper score A->B"),
              ("agreement", "agreement with the reference"), ("untrained_ab", "untrained A->B (control)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        for k, arch in enumerate(archs):
            mine = [r for r in rows if r["arch"] == arch]
            ax.scatter([r[key] for r in mine], [r["accuracy"] for r in mine], s=14, color=f"C{k % 10}", label=arch,
                       alpha=0.8)
        rho = stats.correlation([r[key] for r in rows], [r["accuracy"] for r in rows])
        ax.set_title(f"{label}\nSpearman rho {rho:+.2f}", fontsize=9)
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel("test accuracy", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=6, loc="lower right")
    fig.suptitle(f"zoo on {result.dataset}: {len(rows)} models against the reference {result.reference}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def report(result: ZooRun, analysis: dict[str, Any]) -> str:
    rows = [r for r in result.records if r["id"] != result.reference]
    accs = [r["accuracy"] for r in rows]
    n_arch = len({r["arch"] for r in rows})
    lines = [f"neurocorr reproduce zoo: {result.dataset}, {len(result.records)} models ({n_arch} "
             f"architectures), reference {result.reference}; accuracy {min(accs):.3f}-{max(accs):.3f}; "
             f"{result.seconds:.0f} s on {result.threads} torch thread(s)", "",
             "Spearman rho with test accuracy [95% bootstrap CI] (permutation p); within architecture: pooled rho (p); "
             "leave-one-architecture-out MAE of a line vs the mean (sign-flip p)"]
    for pred in PREDICTORS:
        o = next(r for r in analysis["overall"] if r["predictor"] == pred and r["target"] == "accuracy")
        w = next(r for r in analysis["within"] if r["predictor"] == pred and r["target"] == "accuracy")
        lg = next(r for r in analysis["logo"] if r["predictor"] == pred and r["target"] == "accuracy")
        lines.append(f"  {pred:<20} {o['rho']:+.2f} [{o['rho_low']:+.2f}, {o['rho_high']:+.2f}] (p {o['rho_p']:.3f})"
                     f"  within {w['rho_within']:+.2f} (p {w['p']:.3f})  LOAO {lg['mae_line']:.4f} vs "
                     f"{lg['mae_mean']:.4f} (p {lg['p']:.3f})")
    lines += ["", "Against each family's reference, over that family's models: Spearman rho with test accuracy (p)"]
    for key in FAMILIES:
        cells = []
        for pred in ("score_ab", "score_sym", "cka", "agreement", "untrained_ab"):
            r = next(x for x in analysis["families"] if (x["reference"], x["models"], x["predictor"], x["target"])
                     == (key, key, pred, "accuracy"))
            cells.append(f"{pred} {r['rho']:+.2f} (p {r['rho_p']:.3f})")
        lines.append(f"  {key} {result.references[key]} (n {r['n']}): " + ", ".join(cells))
    lines += ["", f"Leave one architecture out, the atlas's estimators on {len(result.anchors)} anchors: MAE vs the "
              "mean of the other architectures' models (difference [95% CI over architectures], Wilcoxon p over "
              "architectures)"]
    for r in analysis["atlas"]:
        if r["baseline"] == "mean_training" and r["target"] != "drop":
            lines.append(f"  {r['target']:<9} {r['estimator']:<9} {r['mae']:.4f} vs {r['mae_baseline']:.4f} "
                         f"({r['difference']:+.4f} [{r['difference_low']:+.4f}, {r['difference_high']:+.4f}], "
                         f"p {r['p_architectures']:.3f}, {r['wins']}/{r['architectures']} architectures)")
    return "\n".join(lines)
