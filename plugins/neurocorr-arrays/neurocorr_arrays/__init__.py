"""neurocorr-arrays: precomputed activations as models (docs/inputs/activations.md).

The ``arrays`` provider reads ``{layer: array (N, ...)}`` mappings, ``.npz`` files and folders of
``.npy`` files, whose rows are the probe samples; :func:`extract` and ``neurocorr extract`` write
them from any model a provider opens. Comparing two exports gives the comparison of the models.
"""

from __future__ import annotations

from collections.abc import Sequence

from neurocorr_core import ActivationProvider, Command, hookimpl

from .extract import ExtractCommand, extract
from .provider import ArraysProvider

__all__ = ["ArraysProvider", "extract"]


@hookimpl
def neurocorr_activation_providers() -> Sequence[type[ActivationProvider]]:
    return [ArraysProvider]


@hookimpl
def neurocorr_commands() -> Sequence[type[Command]]:
    return [ExtractCommand]
