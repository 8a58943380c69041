"""Turning what a user typed (a path or ``module:callable``) into something a provider loads.

A ``module:callable`` reference may name a module that lies in the current folder (or, for
``neurocorr run``, in the experiment file's folder, see :func:`reference_folder`) the way
``python -m`` would find it. Those folders hold files from others (a shared checkout, a
downloaded experiment), so they are searched only for the reference's own module, never put in
front of the installed packages: a local ``torch.py`` or ``numpy.py`` is never imported in place
of the real one, a reference whose module would shadow an installed one is refused, and
``sys.path`` is as it was once the model is built.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from types import ModuleType

from .errors import NeurocorrError

_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
#: Folders searched for a reference's module before the current folder, os.pathsep-separated:
#: an environment variable, so that the workers of a local Dask cluster, started meanwhile, see
#: them too (they are new processes with this environment).
FOLDERS_ENV = "NEUROCORR_REFERENCE_FOLDERS"
#: What a builder may not return: none of these is a model of any framework (a tuple or a dict
#: may be: JAX builders return (module, params)).
_NOT_MODELS = (type(None), bool, int, float, complex, str, bytes)


def is_reference(spec: object) -> bool:
    return isinstance(spec, str) and bool(_REFERENCE.match(spec)) and not os.path.exists(spec)  # no OSError


@contextmanager
def reference_folder(folder: str | os.PathLike[str]) -> Iterator[None]:
    """While active, references may also name modules in ``folder`` (searched before the
    current folder): ``neurocorr run`` uses the experiment file's folder."""
    before = os.environ.get(FOLDERS_ENV)
    os.environ[FOLDERS_ENV] = os.pathsep.join([os.path.abspath(folder), *filter(None, [before])])
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(FOLDERS_ENV, None)
        else:
            os.environ[FOLDERS_ENV] = before


@dataclass(frozen=True)
class ModelName:
    """A model by name that an installed provider builds itself (``torchvision:resnet18``,
    docs/models-by-name.md): not a file path nor a ``module:callable`` reference."""

    text: str

    def __str__(self) -> str:
        return self.text


def named(spec: object) -> bool:
    """True if an installed provider's ``accepts`` takes the text ``spec`` as a model by name."""
    if not isinstance(spec, str) or ":" not in spec or os.path.exists(spec):
        return False
    from .plugins import get_plugin_manager

    providers = [cls for cls, _ in get_plugin_manager().registry["provider"].values()]
    return any(cls.accepts(spec) for cls in providers)


def resolve_model(spec: object, *, side: str = "model") -> object:
    """Build the model a ``module:callable`` reference names (called with no arguments); a model
    by name comes back as a :class:`ModelName` for its provider; anything else (an object, a
    file path) is returned as it is. ``side`` names the model in messages ("model A")."""
    if named(spec):
        assert isinstance(spec, str)
        return ModelName(spec)
    if not is_reference(spec):
        return spec
    assert isinstance(spec, str)
    module_name, _, attr_path = spec.partition(":")
    where = f"{side} {spec!r}"
    local = _local_folder(module_name.partition(".")[0], _search_folders(), where)
    with _importable_from(local):
        module = _import(module_name, where, local is not None)
        target = _attribute(module, module_name, attr_path, where)
        built = _build(target, where)
    if isinstance(built, _NOT_MODELS):
        raise NeurocorrError(f"{where}: the callable returned {type(built).__name__} {built!r:.60}, not a "
                             "model; it must build and return the model (e.g. a torch.nn.Module)")
    return built


def _search_folders() -> list[Path]:
    """The folders whose modules a reference may name: the experiment's, then the current one."""
    folders = [*map(Path, filter(None, os.environ.get(FOLDERS_ENV, "").split(os.pathsep))), Path.cwd()]
    return list(dict.fromkeys(Path(os.path.realpath(f)) for f in folders))


def _local_folder(top: str, folders: Sequence[Path], where: str) -> Path | None:
    """The folder among ``folders`` that holds module ``top`` when it is not an installed
    module (None: import it as installed). A local module of an installed module's name is
    refused: importing it would replace that package for the whole run."""
    for folder in folders:
        local = _find(top, [str(folder)])
        if local is None:
            continue
        installed = _installed(top, folders)
        if installed is not None and local.loader is None:
            return None  # a plain folder of that name: Python imports the installed module first
        if installed is not None and _origin(installed) != _origin(local):
            raise NeurocorrError(
                f"{where}: {_origin(local) or folder} has the name of the installed module {top!r} "
                f"({_origin(installed) or 'built in'}); neurocorr does not import a local file in place "
                "of an installed package. Rename the local module and the reference")
        return None if installed is not None else folder
    return None


def _find(name: str, path: list[str] | None) -> ModuleSpec | None:
    try:
        return PathFinder.find_spec(name, path)
    except (ImportError, ValueError):
        return None


def _installed(top: str, local: Sequence[Path]) -> ModuleSpec | None:
    """Where ``top`` comes from without the local folders: built in, or on ``sys.path``."""
    skip = {str(f) for f in local}
    path = [p for p in sys.path if os.path.realpath(p or os.curdir) not in skip]
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            spec = find(top, path) if finder is PathFinder else find(top, None)
        except (ImportError, ValueError):
            continue
        if spec is not None:
            return spec
    return None


def _origin(spec: ModuleSpec) -> str | None:
    if spec.origin and spec.has_location:
        return os.path.realpath(spec.origin)
    locations = list(spec.submodule_search_locations or [])
    return os.path.realpath(locations[0]) if locations else None


@contextmanager
def _importable_from(folder: Path | None) -> Iterator[None]:
    """Let the reference's module (and its own helper modules) be imported from ``folder``:
    the folder goes at the END of ``sys.path`` (nothing installed is shadowed) only for as long
    as the model is being built, and no ``__pycache__`` is left in it."""
    if folder is None:
        yield
        return
    entry = str(folder)
    bytecode = sys.dont_write_bytecode
    sys.path.append(entry)
    sys.dont_write_bytecode = True
    importlib.invalidate_caches()  # the folder's files may be newer than a cached listing
    try:
        yield
    finally:
        sys.dont_write_bytecode = bytecode
        for i in range(len(sys.path) - 1, -1, -1):  # the entry this call added, not one the user had
            if sys.path[i] == entry:
                del sys.path[i]
                break


def _import(module_name: str, where: str, local: bool) -> ModuleType:
    if local:
        _forget_moved(module_name.partition(".")[0])
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise NeurocorrError(f"cannot import {module_name!r} for {where}: {exc}. Run from the folder that "
                             "holds the module (or put it next to the experiment file), or install it") from None
    except Exception as exc:  # the module's own code failed: its error, in one line
        raise NeurocorrError(f"{where}: importing {module_name!r} failed with {type(exc).__name__}: {exc}; "
                             "fix the module") from None


def _forget_moved(top: str) -> None:
    """A module imported earlier from a folder that is no longer searched (another experiment's)
    is not the one this reference means: drop it so that the import finds the right file."""
    module = sys.modules.get(top)
    spec = getattr(module, "__spec__", None)
    if module is None or spec is None:
        return
    now = _find(top, None)
    if now is not None and _origin(spec) is not None and _origin(now) != _origin(spec):
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]


def _attribute(module: ModuleType, module_name: str, attr_path: str, where: str) -> object:
    target: object = module
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise NeurocorrError(f"{where}: module {module_name!r} has no attribute {attr_path!r}; name a "
                                 "function or class in it that builds the model")
        target = getattr(target, part)
    if not callable(target):
        raise NeurocorrError(f"{where}: {attr_path!r} is not callable; a model reference names a function "
                             "or class that builds the model with no arguments")
    return target


def _build(target: object, where: str) -> object:
    assert callable(target)
    try:
        return target()
    except NeurocorrError as exc:
        raise NeurocorrError(f"{where}: {exc}") from None
    except Exception as exc:  # the builder is user code: its failure, in one line
        raise NeurocorrError(f"{where}: building the model raised {type(exc).__name__}: {exc}; fix the "
                             "callable (it must build the model with no arguments)") from None


def describe(spec: object) -> str:
    """A short label for reports: the path or reference, or the object's class name."""
    if isinstance(spec, (str, os.PathLike)):
        return os.fspath(spec)
    return type(spec).__name__
