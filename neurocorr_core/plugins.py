"""The plugin manager: loads entry points one by one, keeps a registry of named implementations.

Modelled on tox's plugin manager: one NAME, a typed wrapper around pluggy, and a plugin that
fails to import is recorded as unavailable instead of breaking the others.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import NeurocorrError, PluginError
from .hookspecs import NAME
from .interfaces import ActivationProvider, Command, Executor, MatchingStrategy, Metric
from .probe import Probe
from .sharding import ShardedOutcome, ShardedRun

#: Comma-separated entry-point names that are not loaded (e.g. ``torch,onnx``).
BLOCK_ENV = "NEUROCORR_DISABLE_PLUGINS"
#: The core's own plugin (matchings, the core's commands), always registered.
#: Loaded by name like an entry point: its commands use the plugin manager, so importing it here
#: would tie this module and everything the commands import into one circle.
BUILTIN = "neurocorr_core.builtins"

_HOOKS = {
    "provider": "neurocorr_activation_providers",
    "metric": "neurocorr_similarity_metrics",
    "matching": "neurocorr_matching_strategies",
    "executor": "neurocorr_executors",
    "command": "neurocorr_commands",
}


def require(module: str, install: str) -> None:
    """Raise ImportError unless ``module`` can be imported, without importing it.

    Framework plugins call this at import time so a missing framework makes the plugin
    "unavailable" with an install hint, while the plugin module itself stays import-light.
    """
    try:
        found = sys.modules.get(module, ...) is not None and importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ImportError(f"{module} is not installed; install it with: {install}")


@dataclass
class PluginInfo:
    """What ``neurocorr plugins`` shows for one plugin."""

    name: str
    version: str
    status: str  # "ok", "unavailable" or "blocked"
    reason: str = ""
    hooks: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class PluginManager:
    """A fresh registry of neurocorr plugins: built-ins plus installed entry points."""

    def __init__(self, *, entry_points: bool = True, plugins: Iterable[object] = ()) -> None:
        self.pm = pluggy.PluginManager(NAME)
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self.register(importlib.import_module(BUILTIN), "builtin", version=_core_version())
        if entry_points:
            self._load_entry_points()
        for plugin in plugins:
            self.register(plugin, getattr(plugin, "__name__", repr(plugin)))
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(
                f"{exc}. Hook names must be one of {sorted([*_HOOKS.values(), 'neurocorr_run_sharded'])}; "
                "fix the plugin or disable it with the environment variable "
                f"{BLOCK_ENV}=<name>"
            ) from exc
        self._registry: dict[str, dict[str, tuple[type[Any], str]]] | None = None

    def register(self, plugin: object, name: str, version: str = "") -> None:
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r} is invalid: {exc}") from exc
        except ValueError as exc:
            raise PluginError(f"plugin {name!r} is registered twice: {exc}") from exc
        hooks = sorted(c.name for c in self.pm.get_hookcallers(plugin) or [])
        self.info[name] = PluginInfo(name, version, "ok", hooks=hooks)
        self._registry = None

    def _load_entry_points(self) -> None:
        blocked = {b.strip() for b in os.environ.get(BLOCK_ENV, "").split(",") if b.strip()}
        for ep in importlib.metadata.entry_points(group=NAME):
            version = ep.dist.version if ep.dist else ""
            if ep.name in blocked:
                self.pm.set_blocked(ep.name)
                self.info[ep.name] = PluginInfo(ep.name, version, "blocked",
                                                reason=f"listed in {BLOCK_ENV}")
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # any failure of a third-party import is contained
                self.info[ep.name] = PluginInfo(ep.name, version, "unavailable",
                                                reason=f"{type(exc).__name__}: {exc}")
                continue
            self.register(plugin, ep.name, version)

    # -- the registry of named implementations -------------------------------------------
    def _build_registry(self) -> dict[str, dict[str, tuple[type[Any], str]]]:
        registry: dict[str, dict[str, tuple[type[Any], str]]] = {}
        for role, hook_name in _HOOKS.items():
            found: dict[str, tuple[type[Any], str]] = {}
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                for cls in impl.function() or []:
                    name = getattr(cls, "name", None)
                    if not isinstance(name, str) or not name:
                        raise PluginError(f"plugin {impl.plugin_name!r} returned {cls!r} "
                                          f"from {hook_name} without a string 'name'")
                    if name in found:
                        raise PluginError(
                            f"two plugins provide the {role} {name!r}: "
                            f"{found[name][1]!r} and {impl.plugin_name!r}; uninstall one or "
                            f"disable it with {BLOCK_ENV}=<plugin>")
                    found[name] = (cls, impl.plugin_name)
                    self.info[impl.plugin_name].provides.setdefault(role, []).append(name)
            registry[role] = found
        for impl in self.pm.hook.neurocorr_probe_names.get_hookimpls():  # listed, not registered: no classes
            names: Any = impl.function()  # a plugin's return value, as the loop above reads classes
            self.info[impl.plugin_name].provides["probe"] = [str(name) for name in names or []]
        return registry

    @property
    def registry(self) -> dict[str, dict[str, tuple[type[Any], str]]]:
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def names(self, role: str) -> list[str]:
        return sorted(self.registry[role])

    def get(self, role: str, name: str) -> type[Any]:
        try:
            return self.registry[role][name][0]
        except KeyError:
            hint = self._unavailable_hint()
            raise NeurocorrError(
                f"no {role} named {name!r}; available: {', '.join(self.names(role)) or 'none'}."
                f"{hint} Install the plugin that provides it (see 'neurocorr plugins')."
            ) from None

    def metric(self, name: str) -> type[Metric]:
        return self.get("metric", name)

    def matching(self, name: str) -> type[MatchingStrategy]:
        return self.get("matching", name)

    def provider(self, name: str) -> type[ActivationProvider]:
        return self.get("provider", name)

    def executor(self, name: str) -> type[Executor]:
        return self.get("executor", name)

    def commands(self) -> list[type[Command]]:
        return [self.registry["command"][name][0] for name in self.names("command")]

    def load_probe(self, text: str) -> Probe | None:
        """The probe a plugin reads from ``text`` (``neurocorr_load_probe``); None if none does."""
        return self.pm.hook.neurocorr_load_probe(text=text)

    def probe_names(self) -> list[str]:
        return [name for names in self.pm.hook.neurocorr_probe_names() for name in names]

    def run_sharded(self, run: ShardedRun) -> ShardedOutcome:
        """The ``neurocorr_run_sharded`` hook's outcome, from the one plugin that implements it."""
        impls = self.pm.hook.neurocorr_run_sharded.get_hookimpls()
        if len(impls) > 1:
            names = ", ".join(sorted(impl.plugin_name for impl in impls))
            raise PluginError(f"several plugins run sharded comparisons: {names}; uninstall one or disable "
                              f"it with {BLOCK_ENV}=<plugin>")
        outcome = self.pm.hook.neurocorr_run_sharded(run=run)
        if outcome is None:
            raise NeurocorrError("executors, shards and the activation cache come with the neurocorr-scale "
                                 "package: pip install neurocorr-scale (or drop --executor, --shards and "
                                 f"--cache-dir).{self._unavailable_hint()}")
        return outcome

    def provider_for(self, model: object) -> type[ActivationProvider]:
        """The one provider that accepts ``model``; an error that says who handles what."""
        providers = [cls for cls, _ in self.registry["provider"].values()]
        takers = [cls for cls in providers if _accepts_quietly(cls.accepts, model)]
        if len(takers) == 1:
            return takers[0]
        if takers:
            names = ", ".join(sorted(c.name for c in takers))
            raise NeurocorrError(f"several providers accept {_describe(model)}: {names}; "
                                 "choose one with provider=NAME (--provider-a/--provider-b)")
        known = "; ".join(f"{c.name}: {c.handles or 'see its docs'}"
                          for c in sorted(providers, key=lambda c: c.name)) or "none installed"
        raise NeurocorrError(
            f"no installed provider recognises {_describe(model)}. Providers: {known}."
            f"{self._unavailable_hint()} {_install_hint(model)}")

    def _unavailable_hint(self) -> str:
        bad = [f"{i.name} ({i.reason})" for i in self.info.values() if i.status == "unavailable"]
        return f" Unavailable plugins: {'; '.join(bad)}." if bad else ""

    def plugins(self) -> list[PluginInfo]:
        if all(i.status != "ok" for i in self.info.values()):
            return list(self.info.values())
        self.registry  # noqa: B018 - fills PluginInfo.provides
        return sorted(self.info.values(), key=lambda i: i.name)

    def versions(self) -> dict[str, str]:
        return {i.name: i.version for i in self.info.values() if i.status == "ok"}


def _accepts_quietly(check: Callable[[object], bool], model: object) -> bool:
    try:
        return bool(check(model))
    except Exception:
        return False


def _install_hint(model: object) -> str:
    path = os.fspath(model) if isinstance(model, (str, os.PathLike)) else ""
    npy_folder = bool(path) and os.path.isdir(path) and any(f.endswith(".npy") for f in os.listdir(path))
    if isinstance(model, Mapping) or path.lower().endswith(".npz") or npy_folder:
        return "Precomputed activations are read by the arrays provider: pip install neurocorr-arrays"
    return "Install the plugin for your framework, e.g. pip install neurocorr-torch"


def _describe(model: object) -> str:
    if isinstance(model, (str, os.PathLike)):
        return f"the file {os.fspath(model)!r}"
    return f"an object of type {type(model).__module__}.{type(model).__qualname__}"


def _core_version() -> str:
    try:
        return importlib.metadata.version("neurocorr-core")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


_default: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, built on first use."""
    global _default
    if _default is None:
        _default = PluginManager()
    return _default

