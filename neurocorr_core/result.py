"""The result of a comparison, serialisable to JSON."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NeurocorrError
from .files import write_atomic
from .interfaces import LayerInfo
from .summary import summary as _summary_text


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


#: The network score's entries, as reports show them: the headline numbers of the HTML report and the
#: ``network`` rows of the CSV; any other entry of a score (an interval, a p-value) is listed under them.
DIRECTIONS = ("a_to_b", "b_to_a", "symmetric")


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

    def __repr__(self) -> str:
        """One screen line or two: the models, the network score, the layers; the rest in summary()."""
        c = self.config
        return (f"Comparison({self.model_a!r} vs {self.model_b!r}: A->B {self.score.a_to_b:.4f}, "
                f"B->A {self.score.b_to_a:.4f}, symmetric {self.score.symmetric:.4f}; {self.samples} samples, "
                f"{c.get('metric')}/{c.get('matching')}, {c.get('neurons')} view, {len(self.layers_a)} x "
                f"{len(self.layers_b)} layers; .summary(), .layer_frame())")

    def summary(self) -> str:
        """The plain-text report the CLI prints: scores, dead neurons, each layer."""
        return _summary_text(self)

    def layer_frame(self, direction: str = "a_to_b") -> Any:
        """The layer table as a pandas DataFrame, A's layer names down and B's across (``b_to_a``:
        B's down, A's across): the mean best-match score of the row layer's neurons in the column layer."""
        pd = _pandas()
        if direction not in ("a_to_b", "b_to_a"):
            raise NeurocorrError(f"direction must be 'a_to_b' or 'b_to_a', got {direction!r}")
        rows, cols = (self.layers_a, self.layers_b) if direction == "a_to_b" else (self.layers_b, self.layers_a)
        table = self.layer_table if direction == "a_to_b" else self.layer_table_ba
        if table.shape != (len(rows), len(cols)):  # one layer a side: the table is the score itself
            table = np.full((len(rows), len(cols)), getattr(self.score, direction))
        down, across = ("A", "B") if direction == "a_to_b" else ("B", "A")
        return pd.DataFrame(table, index=pd.Index([lr.info.name for lr in rows], name=down),
                            columns=pd.Index([lr.info.name for lr in cols], name=across))

    def to_pandas(self) -> Any:
        """One row per selected layer of either model (side, layer, kind, neurons, dead, score), as a
        pandas DataFrame; :meth:`layer_frame` gives the layer x layer table."""
        pd = _pandas()
        rows = [{"side": side, "layer": lr.info.name, "kind": lr.info.kind, "depth": lr.index,
                 "neurons": lr.neurons, "dead": lr.dead, "score": lr.score}
                for side, layers in (("A", self.layers_a), ("B", self.layers_b)) for lr in layers]
        return pd.DataFrame(rows).set_index(["side", "layer"])

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
        """The JSON text; written atomically to ``path`` when given (see :func:`write_files`)."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            write_atomic(Path(path), text)
        return text


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise NeurocorrError("tables as DataFrames need pandas, which is not installed: pip install pandas "
                             "(without it, read result.layer_table with result.layers_a/layers_b)") from None
    return pandas


def _floats(values: np.ndarray) -> list[float | None]:
    """JSON has no NaN: None stands for a neuron without a match."""
    return [float(v) if np.isfinite(v) else None for v in values.tolist()]
