"""Canonical layouts: neurocorr probes are NCHW and outputs leave channels-first; Keras is NHWC.

Only arrays with a channel axis and at least one spatial axis (ndim >= 3 with the batch) are
moved; (batch, features) arrays pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neurocorr_core import NeurocorrError

LAYOUTS = ("auto", "nchw", "nhwc")
LAST, FIRST = "channels_last", "channels_first"

Shape = Sequence[int | None]


def data_format(layer: object) -> str | None:
    """A layer's own data format (conv, pooling), else None: its output follows its input's."""
    fmt = getattr(layer, "data_format", None)
    return fmt if fmt in (FIRST, LAST) else None


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise NeurocorrError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)} "
                             "(auto: follow the model's input; nhwc: move the probe's channels last)")
    return layout


def channels_last(shape: tuple[int, ...]) -> tuple[int, ...]:
    """(C, H, W) -> (H, W, C) for any number of spatial axes."""
    return (*shape[1:], shape[0])


def fits(shape: tuple[int, ...], declared: Shape | None) -> bool:
    """True if a per-sample ``shape`` matches a declared per-sample shape (None: any size)."""
    if declared is None:
        return True
    if len(shape) != len(declared):
        return False
    return all(d is None or d == s for s, d in zip(shape, declared, strict=True))


def input_format(layout: str, sample: tuple[int, ...], declared: Shape | None, fallback: str) -> str:
    """Whether the model wants the probe channels-last or as given.

    ``sample`` is the probe's per-sample shape (C, H, W); ``declared`` the model's per-sample
    input shape if it is known; ``fallback`` the model's own data format (first conv layer,
    else Keras' default), used when the declared shape cannot tell (unknown, or square).
    """
    if layout == "nhwc":
        return LAST
    if layout == "nchw" or len(sample) < 2:
        return FIRST
    as_is, moved = fits(sample, declared), fits(channels_last(sample), declared)
    if moved != as_is:
        return LAST if moved else FIRST
    return fallback


def to_model(batch: np.ndarray, fmt: str) -> np.ndarray:
    """A canonical NCHW probe batch in the model's layout, float32, contiguous."""
    if fmt == LAST and batch.ndim >= 3:
        batch = np.moveaxis(batch, 1, -1)
    return np.ascontiguousarray(batch, dtype=np.float32)


def to_canonical(output: np.ndarray, fmt: str) -> np.ndarray:
    """A layer output in the model's layout -> float32, channels-first, contiguous."""
    if fmt == LAST and output.ndim >= 3:
        output = np.moveaxis(output, -1, 1)
    return np.ascontiguousarray(output, dtype=np.float32)


def spatial_axes(rank: int, fmt: str) -> tuple[int, ...]:
    """The spatial axes of an output of ``rank`` in layout ``fmt``: those that
    :func:`to_canonical` puts after the channels, and over which the channel view averages."""
    if rank < 3:
        return ()
    return tuple(range(1, rank - 1)) if fmt == LAST else tuple(range(2, rank))


def describe_expected(declared: Shape, fmt: str) -> str:
    """The input a model wants, in its own layout and as a neurocorr (NCHW) probe."""
    own = "(N, " + ", ".join("?" if d is None else str(d) for d in declared) + ")"
    if fmt != LAST or len(declared) < 2:
        return f"inputs of shape {own}"
    canon = (declared[-1], *declared[:-1])
    probe = "(N, " + ", ".join("?" if d is None else str(d) for d in canon) + ")"
    return f"inputs of shape {own} (channels-last), i.e. a probe of shape {probe} in neurocorr's NCHW layout"
