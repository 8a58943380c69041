"""The ``hf-flax`` provider: a Flax nnx twin of a transformer (:func:`~neurocorr_transformers.flax_twin.
from_torch`) run by neurocorr-jax's provider on the same token probes as the ``hf`` provider, its layers
named uniformly (``embed``, ``block{i}.attn``, ``block{i}.mlp.act``, ``block{i}.resid``) and the probe's
attention mask handed to the views, so both sides drop the same padded positions.

Import-light: jax and flax are imported when a twin is opened, not when the provider is registered.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

import numpy as np

from neurocorr_core import LayerInfo, NeurocorrError
from neurocorr_core.views import MASK
from neurocorr_jax.provider import JaxProvider

from .probe import decode

#: Where the twin sits inside the module the jax provider runs (:class:`~.flax_twin.Fed`).
INNER = "model."


class HFFlaxProvider(JaxProvider):
    """Runs a twin made by ``from_torch`` (any nnx module with ``points()``, ``__call__(input_ids,
    attention_mask)``, ``vocab_size`` and ``max_positions`` will do) in one jitted forward pass a batch.
    Options: ``device`` (as the jax provider's)."""

    name = "hf-flax"
    channel_means = False
    handles = "Flax nnx twins of transformers made by neurocorr_transformers.flax_twin.from_torch (chosen by name)"

    @classmethod
    def accepts(cls, model: object) -> bool:
        return False  # an nnx module is the jax provider's; this one is asked for by name

    def __init__(self, model: object, *, device: str = "cpu", **options: Any) -> None:
        points = getattr(model, "points", None)
        if not callable(points):
            raise NeurocorrError(f"the hf-flax provider runs Flax twins of transformers; {type(model).__name__} is "
                                 "none: make one with neurocorr_transformers.flax_twin.from_torch(hf_model), or run "
                                 "another Flax module with the jax provider")
        from .flax_twin import Fed

        #: uniform name -> (path inside the twin, kind), in forward order
        self.points: dict[str, tuple[str, str]] = dict(points())
        self.vocab_size = int(getattr(model, "vocab_size", 0)) or None
        self.max_positions = int(getattr(model, "max_positions", 0)) or None
        super().__init__(Fed(cast(Any, model)), device=device, **options)
        self.label = type(model).__name__

    def layers(self, sample: np.ndarray) -> list[LayerInfo]:
        found = {info.name: info for info in super().layers(self._fed(sample)[0])}
        infos = []
        for depth, (name, (path, kind)) in enumerate(self.points.items()):
            info = found.get(INNER + path)
            if info is None:
                raise NeurocorrError(f"{self.label} produced no output at {path!r} (its layer {name}); its points() "
                                     "must name module paths of the twin")
            infos.append(LayerInfo(name, info.shape, depth, kind, info.op))
        return infos

    def activations(self, batches: Iterable[np.ndarray], layers: Sequence[str], *,
                    channel_means: bool = False) -> Iterator[dict[str, np.ndarray]]:
        unknown = [n for n in layers if n not in self.points]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(self.points), n=5, cutoff=0.3)
            raise NeurocorrError(f"{self.label} has no layer(s) {unknown}; closest names: "
                                 f"{', '.join(close or list(self.points)[:5])}")
        inner = [INNER + self.points[n][0] for n in layers]
        masks: list[np.ndarray] = []

        def fed() -> Iterator[np.ndarray]:  # the base class yields one output per batch, in order
            for batch in batches:
                x, mask = self._fed(batch)
                masks.append(mask)
                yield x

        for out in super().activations(fed(), inner):
            yield {**{name: out[path] for name, path in zip(layers, inner, strict=True)}, MASK: masks.pop(0)}

    def _fed(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A probe batch as the twin's input (batch, 2, tokens) float32 (ids, mask) and the mask (bool)."""
        decoded = decode(batch)
        if decoded.ids is None or decoded.mask is None:
            raise NeurocorrError(f"{self.label} is a Flax twin: it takes token ids, not text; give "
                                 "token_probe(ids, attention_mask) (tokenize the texts first)")
        ids, mask = decoded.ids, decoded.mask
        if self.vocab_size is not None and ids.size and ids.max() >= self.vocab_size:
            raise NeurocorrError(f"{self.label} has a vocabulary of {self.vocab_size} tokens but the probe holds "
                                 f"token id {int(ids.max())}: tokenize the probe with this model's tokenizer")
        if self.max_positions is not None and ids.shape[1] > self.max_positions:
            raise NeurocorrError(f"{self.label} takes at most {self.max_positions} tokens per sequence; the probe "
                                 f"holds {ids.shape[1]}: cut the sequences")
        return np.stack([ids, mask], axis=1).astype(np.float32), mask.astype(bool)
