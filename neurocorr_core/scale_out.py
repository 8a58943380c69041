"""Where a run's tasks run: an executor chosen by name among the plugins' and built with its
options, and the scale-out options of ``compare``, ``grid`` and ``predict`` (docs/scale-out.md).

Executors come through the ``neurocorr_executors`` hook like metrics do: ``local`` comes with the
neurocorr-scale package (which runs the shard tasks), ``dask`` with neurocorr-dask. ``--executor NAME`` chooses
one; ``--executor-option KEY=VALUE`` (repeatable) reaches its constructor as a keyword, and the
constructor refuses one it does not take. ``--scheduler ADDRESS`` and ``--workers N`` are
shorthands for the executor's options of those names: the dask executor's when no executor is
named.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

import numpy as np

from .cli_options import key_value
from .errors import NeurocorrError
from .interfaces import Executor
from .plugins import PluginManager, get_plugin_manager

#: The executor when none is named.
DEFAULT_EXECUTOR = "local"
#: ``--scheduler`` and ``--workers`` are shorthands for options of this executor (and of any other
#: executor that takes options of those names).
SHORTHAND_EXECUTOR = "dask"
#: Executors of the house's own plugin packages, and the package to install for each.
PLUGIN_PACKAGES = {"dask": "neurocorr-dask", "local": "neurocorr-scale"}
OPTION_FLAG = "--executor-option KEY=VALUE"  # how a command gives executor options (None: it does not)


def executor_keywords(executor: str | Executor | None = None, scheduler: str | None = None,
                  workers: int | None = None, shards: int | None = None,
                  options: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The executor's name and its constructor's keywords (``options`` with the shorthands),
    once they are known to fit together. Nothing is looked up or started: :func:`resolve` checks
    that the executor is installed and takes the shorthands."""
    given = {key: value for key, value in (("scheduler", scheduler), ("workers", workers)) if value is not None}
    started = isinstance(executor, Executor)
    name = executor.name if isinstance(executor, Executor) else executor or (
        SHORTHAND_EXECUTOR if given else DEFAULT_EXECUTOR)
    if not isinstance(name, str):
        raise NeurocorrError(f"executor must be an executor's name (e.g. {DEFAULT_EXECUTOR!r}) or a started "
                             f"Executor, got {type(executor).__name__}")
    for label, value in (("workers", workers), ("shards", shards)):  # counts, whichever executor takes them
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise NeurocorrError(f"{label} must be a whole number of at least 1, got {value!r}; give e.g. "
                                 f"--{label} 2, or leave it out")
    options = dict(options or {})
    if started and (given or options):
        raise NeurocorrError("give either a started executor or its options (--scheduler, --workers, "
                             "--executor-option), not both")
    for key in sorted(given.keys() & options.keys()):
        if options[key] != given[key]:
            raise NeurocorrError(f"--{key} {given[key]} and --executor-option {key}={options[key]} disagree; "
                                 "give it once")
    return name, {**options, **given}


def executor_class(name: str, plugin_manager: PluginManager | None = None) -> type[Executor]:
    """The installed executor named ``name``; for a missing one of the house's plugin packages,
    an error that says which package to install."""
    pm = plugin_manager or get_plugin_manager()
    package = PLUGIN_PACKAGES.get(name)
    if package is None or name in pm.names("executor"):
        return pm.executor(name)  # an unknown name: the error lists the executors installed
    raise NeurocorrError(
        f"the {name} executor comes with the plugin package {package}, which is not installed or is disabled "
        f"(see 'neurocorr plugins'); install it with: pip install {package} (from a source checkout: pip "
        f"install -e plugins/{package})")


def resolve(executor: str | Executor | None = None, scheduler: str | None = None, workers: int | None = None,
            shards: int | None = None, options: Mapping[str, Any] | None = None, option_flag: str | None = OPTION_FLAG,
            plugin_manager: PluginManager | None = None) -> tuple[type[Executor], dict[str, Any]]:
    """The executor's class (a started executor's own) and its constructor's keywords, once the
    options fit together, the executor is installed and it takes the shorthands given (the error
    names ``option_flag``, the command's option for the executor's options). Nothing is started."""
    name, keywords = executor_keywords(executor, scheduler, workers, shards, options)
    if isinstance(executor, Executor):
        return type(executor), keywords
    cls = executor_class(name, plugin_manager)
    takes = {p.name for p in inspect.signature(cls).parameters.values()
             if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    if (scheduler is not None and "scheduler" not in takes) or (workers is not None and "workers" not in takes):
        own = f"the {name} executor's options: {', '.join(sorted(takes)) or 'none'}, given as {option_flag}"
        raise NeurocorrError(f"--scheduler and --workers belong to the {SHORTHAND_EXECUTOR} executor; add --executor "
                             f"{SHORTHAND_EXECUTOR} ({own if option_flag else f'the {name} executor takes neither'})")
    return cls, keywords


def get_executor(executor: str | Executor | None = None, *, scheduler: str | None = None,
                 workers: int | None = None, options: Mapping[str, Any] | None = None,
                 plugin_manager: PluginManager | None = None) -> Executor:
    """The executor named ``executor`` (default ``local``) built with ``options`` and the
    shorthands; a started :class:`Executor` is returned as it is."""
    cls, keywords = resolve(executor, scheduler, workers, None, options, plugin_manager=plugin_manager)
    return executor if isinstance(executor, Executor) else cls(**keywords)


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous ranges covering ``range(n)``, sizes differing by at most one."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise NeurocorrError(f"shards must be a whole number of at least 1, got {shards!r}")
    if shards > n // 2:
        raise NeurocorrError(f"{shards} shards of a {n}-sample probe leave shards of fewer than 2 samples; "
                             f"use at most {max(1, n // 2)} shards")
    edges = np.linspace(0, n, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in pairwise(edges)]


def default_shards(executor: Executor, shards: int | None, samples: int) -> int:
    """One shard locally; on a remote executor one per task it runs at once (a worker), at most
    one per two samples."""
    if shards is not None:
        return shards
    if not executor.remote:
        return 1
    return max(1, min(executor.slots() or 1, samples // 2))


def check_sharding(executor: str | Executor | None, scheduler: str | None, workers: int | None,
                   shards: int | None, cache: Any, significance: bool, *,
                   options: Mapping[str, Any] | None = None, plugin_manager: PluginManager | None = None) -> bool:
    """True when compare() should run its plan shard by shard on an executor (any of the options
    given), once the options are known to fit together and the executor is installed."""
    if all(v is None or v is False for v in (executor, scheduler, workers, shards, cache)) and not options:
        return False
    resolve(executor, scheduler, workers, shards, options, plugin_manager=plugin_manager)  # a missing one fails now
    if significance:
        raise NeurocorrError("the permutation null and the bootstrap resample all activations in one "
                             "process, so they do not run on an executor or with shards or the cache; drop "
                             "--executor, --shards and --cache-dir, or drop --permutations and --bootstrap")
    return True


# -- the command line ---------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser, cache_default: bool = False) -> None:
    """The executor, shard and cache options of a command (docs/scale-out.md)."""
    g = p.add_argument_group("scale out (docs/scale-out.md)")
    g.add_argument("--executor", metavar="NAME", type=executor_name,
                   help=f"where tasks run: {DEFAULT_EXECUTOR} (default), or an executor plugin's, e.g. dask "
                        "(pip install neurocorr-dask); 'neurocorr plugins' lists them")
    g.add_argument("--executor-option", action="append", metavar="KEY=VALUE", type=key_value,
                   help="an option of the executor (repeatable), e.g. threads=1 (local) or timeout=30 (dask); "
                        "a VALUE that parses as JSON is taken as such, else as text")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="dask: the scheduler to use, e.g. tcp://127.0.0.1:8786 (default: start a local "
                        "cluster); short for --executor dask --executor-option scheduler=ADDRESS")
    g.add_argument("--workers", type=int, metavar="N",
                   help="dask: worker processes of the local cluster (default 2); short for --executor dask "
                        "--executor-option workers=N")
    g.add_argument("--shards", type=int, metavar="N",
                   help="split the probe into N shards (default: 1 locally, one per worker on dask)")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="activation cache folder" + (" (default $NEUROCORR_CACHE_DIR or ~/.cache/neurocorr/activations)"
                                                     if cache_default else " (default: no cache)"))
    if cache_default:
        g.add_argument("--no-cache", action="store_true", help="do not read or write the activation cache")


def executor_name(text: str) -> str:
    """An installed executor's name (an argparse type: a wrong one is a usage error of --executor,
    and the key of an experiment file that names it)."""
    pm = get_plugin_manager()
    if text in pm.names("executor") or text in PLUGIN_PACKAGES:
        try:
            executor_class(text, pm)  # a missing house plugin: what to install
        except NeurocorrError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(pm.names('executor'))}; "
                                     "executor plugins add others, see 'neurocorr plugins')")


def options_from(args: argparse.Namespace, cache_default: bool = False) -> dict[str, Any]:
    """compare()/grid() keywords from the parsed options of :func:`add_arguments`, checked before
    anything is opened (the executor installed, the shorthands its own)."""
    options = dict(args.executor_option or [])
    if any(v is not None for v in (args.executor, args.scheduler, args.workers, args.shards)) or options:
        resolve(args.executor, args.scheduler, args.workers, args.shards, options)
    cache: Any = args.cache_dir
    if cache_default and not cache:
        cache = not getattr(args, "no_cache", False)
    return {"executor": args.executor, "executor_options": options, "scheduler": args.scheduler,
            "workers": args.workers, "shards": args.shards, "cache": cache}
