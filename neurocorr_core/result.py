"""The result of a comparison, serialisable to JSON."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .interfaces import LayerInfo


@dataclass(frozen=True)
class LayerResult:
    """A selected layer: its info, its depth index among the selected layers, its neuron
    count in the chosen view, how many of them were constant (dead) over the probe, and
    the mean best-match score of its neurons in the other model (network-score terms)."""

    info: LayerInfo
    index: int
    neurons: int
    dead: int
    score: float
    #: How many of its neurons were sampled (None: all of them; see ``sample_neurons``).
    sampled: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.info.to_dict(), "index": self.index, "neurons": self.neurons,
                "dead": self.dead, "score": self.score, "sampled": self.sampled}


@dataclass(frozen=True)
class Score:
    a_to_b: float
    b_to_a: float

    @property
    def symmetric(self) -> float:
        return (self.a_to_b + self.b_to_a) / 2

    def to_dict(self) -> dict[str, float]:
        return {"a_to_b": self.a_to_b, "b_to_a": self.b_to_a, "symmetric": self.symmetric}


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or Infinity: such a value is written as null."""
    return None if value is None or not np.isfinite(value) else float(value)


@dataclass(frozen=True)
class Significance:
    """Is the symmetric network score more than chance? (docs/significance.md)

    Permutation null: B's probe order shuffled ``permutations`` times, the score recomputed
    each time; ``z = (score - null_mean) / null_std`` and the one-sided
    ``p = (1 + #{null >= score}) / (permutations + 1)``. Bootstrap: the probe samples drawn
    with replacement ``bootstrap`` times; ``ci`` is the percentile interval at ``confidence``,
    ``ci_basic`` the basic (reverse percentile) interval ``[2 s - q_high, 2 s - q_low]``, and
    ``bootstrap_bias`` the mean replicate minus the score (a best match is inflated by the
    repeated samples of a resample; when the bias is not small beside ``bootstrap_std``,
    prefer ``ci_basic`` or a larger probe). Fields of a part that was not run are None.
    """

    seed: int
    permutations: int = 0
    null_mean: float | None = None
    null_std: float | None = None
    z: float | None = None
    p_value: float | None = None
    bootstrap: int = 0
    confidence: float = 0.95
    ci: tuple[float, float] | None = None
    bootstrap_std: float | None = None
    bootstrap_bias: float | None = None
    ci_basic: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"statistic": "symmetric", "seed": self.seed, "permutations": self.permutations,
                "permuted": "probe order of model B", "null_mean": _finite(self.null_mean),
                "null_std": _finite(self.null_std), "z": _finite(self.z), "p_value": _finite(self.p_value),
                "bootstrap": self.bootstrap, "confidence": self.confidence,
                "ci": _pair(self.ci), "ci_basic": _pair(self.ci_basic),
                "bootstrap_std": _finite(self.bootstrap_std), "bootstrap_bias": _finite(self.bootstrap_bias)}


def _pair(ci: tuple[float, float] | None) -> list[float | None] | None:
    return None if ci is None else [_finite(ci[0]), _finite(ci[1])]


@dataclass(frozen=True)
class Comparison:
    """What :func:`neurocorr_core.compare` returns.

    ``layer_table[i, j]``: mean best-match score (no depth penalty) of the neurons of
    ``layers_a[i]`` within ``layers_b[j]``; ``layer_table_ba`` the same from B to A (for a
    layer-level metric: the metric's own table and its transpose).
    ``partner_a[k]``: index (into B's concatenated neurons) of neuron k of A's match, -1
    for none (unmatched, or not sampled); for a layer-level metric, layer indices.
    ``value_a[k]``: neuron k of A's term of the network score: its match's |r| (r with
    ``absolute=False``) divided by the depth penalty; 0 for a constant or unmatched neuron, NaN
    for one not sampled; per layer for a layer-level metric. ``partner_b``, ``value_b``: the
    same from B to A.
    ``matched_fraction``: share of each side's (sampled) neurons that got a partner (below
    1 for ``mutual``, and for ``hungarian`` on the larger side). ``standard_error``: of the
    scores estimated from sampled neurons (None when every neuron was used).
    """

    model_a: str
    model_b: str
    samples: int
    score: Score
    layers_a: list[LayerResult]
    layers_b: list[LayerResult]
    layer_table: np.ndarray
    layer_table_ba: np.ndarray
    partner_a: np.ndarray
    partner_b: np.ndarray
    value_a: np.ndarray
    value_b: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    matched_fraction: dict[str, float] = field(default_factory=dict)
    standard_error: dict[str, float] | None = None
    significance: Significance | None = None

    @property
    def dead_neurons(self) -> dict[str, dict[str, int]]:
        return {"a": {lr.info.name: lr.dead for lr in self.layers_a},
                "b": {lr.info.name: lr.dead for lr in self.layers_b}}

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "samples": self.samples,
            "score": self.score.to_dict(),
            "layers_a": [lr.to_dict() for lr in self.layers_a],
            "layers_b": [lr.to_dict() for lr in self.layers_b],
            "layer_table": self.layer_table.tolist(),
            "layer_table_ba": self.layer_table_ba.tolist(),
            "dead_neurons": self.dead_neurons,
            "partner_a": self.partner_a.tolist(),
            "partner_b": self.partner_b.tolist(),
            "value_a": _floats(self.value_a),
            "value_b": _floats(self.value_b),
            "config": self.config,
            "versions": self.versions,
            "matched_fraction": self.matched_fraction,
            "standard_error": self.standard_error,
            "significance": None if self.significance is None else self.significance.to_dict(),
        }

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The JSON text; written atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            write_atomic(Path(path), text)
        return text


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder, so a failure leaves no half file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _floats(values: np.ndarray) -> list[float | None]:
    """JSON has no NaN: None stands for a neuron without a match."""
    return [float(v) if np.isfinite(v) else None for v in values.tolist()]
