"""The reference atlas for neurocorr: ``neurocorr atlas add|ls|rm``, ``neurocorr grid`` and
``neurocorr predict`` (docs/atlas.md).

The plugin module only offers the commands (``neurocorr --help`` loads it); the library is in
its modules: :mod:`neurocorr_atlas.store` (the atlas file), :mod:`neurocorr_atlas.fill` (adding
models, filling the grid), :mod:`neurocorr_atlas.estimators` and :mod:`neurocorr_atlas.predict`.
"""

from __future__ import annotations

from collections.abc import Sequence

from neurocorr_core import Command, hookimpl

from .commands import AtlasCommand, GridCommand, PredictCommand

__all__ = ["AtlasCommand", "GridCommand", "PredictCommand"]


@hookimpl
def neurocorr_commands() -> Sequence[type[Command]]:
    return [AtlasCommand, GridCommand, PredictCommand]
