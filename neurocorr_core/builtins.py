"""The built-in plugin: what the core itself offers, through the same hooks as any plugin.

The matching strategies ``max``, ``mutual`` and ``hungarian`` and the core's commands
(``plugins``, ``layers``, ``compare``, ``run``). Executors, shards and the activation
cache come with the neurocorr-scale package; precomputed activations and ``extract`` with neurocorr-arrays. The plugin
manager registers this module as the plugin named "builtin"; it loads it by name, as it loads
entry points, so the kernel does not depend on the commands built on top of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from .commands import COMMANDS
from .hookspecs import hookimpl
from .interfaces import Command, MatchingStrategy
from .matching import HungarianMatching, MaxMatching, MutualMatching


@hookimpl
def neurocorr_matching_strategies() -> Sequence[type[MatchingStrategy]]:
    return [MaxMatching, MutualMatching, HungarianMatching]


@hookimpl
def neurocorr_commands() -> Sequence[type[Command]]:
    return COMMANDS
