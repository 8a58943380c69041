"""compare()'s plan run shard by shard: what the core hands over and gets back.

The core streams a comparison in this process. When an executor, shards or the activation cache
are asked for, it hands the same plan, as a :class:`ShardedRun`, to the plugin that implements
the ``neurocorr_run_sharded`` hook (the neurocorr-scale package), and finishes the
:class:`ShardedOutcome`'s merged metrics itself (docs/scale-out.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .interfaces import ActivationProvider, Executor, Metric
from .pipeline import Plan
from .probe import Probe


@dataclass(frozen=True)
class ShardedModel:
    """One side: the model as the user gave it, its opened provider, the provider's options."""

    spec: object
    provider: ActivationProvider
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ShardedRun:
    """A plan, its two models and probes, the started executor to run it on, the shard count
    (None: the executor's default) and the activation cache (a folder, True or None)."""

    plan: Plan
    models: tuple[ShardedModel, ShardedModel]
    probes: tuple[Probe, Probe]
    neurons: str
    batch_size: int
    executor: Executor
    shards: int | None = None
    cache: Any = None


@dataclass(frozen=True)
class ShardedOutcome:
    """The plan's metrics merged over every shard, and what ran (for the result's config)."""

    metrics: list[Metric]
    ran: dict[str, Any]
