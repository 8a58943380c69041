"""Turning what a user typed (a path or ``module:callable``) into something a provider loads."""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path

from .errors import NeurocorrError

_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def is_reference(spec: object) -> bool:
    return isinstance(spec, str) and bool(_REFERENCE.match(spec)) and not Path(spec).exists()


def resolve_model(spec: object) -> object:
    """Build the model a ``module:callable`` reference names (called with no arguments);
    anything else (an object, a file path) is returned as it is."""
    if not is_reference(spec):
        return spec
    assert isinstance(spec, str)
    module_name, _, attr_path = spec.partition(":")
    if os.getcwd() not in sys.path:  # like 'python -m', let references name local modules
        sys.path.insert(0, os.getcwd())
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise NeurocorrError(f"cannot import {module_name!r} for model {spec!r}: {exc}. "
                             "Run from the folder that holds the module or install it") from None
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise NeurocorrError(f"module {module_name!r} has no attribute {attr_path!r} "
                                 f"(model reference {spec!r})")
        target = getattr(target, part)
    if not callable(target):
        raise NeurocorrError(f"{spec!r} is not callable; a model reference names a function "
                             "or class that builds the model with no arguments")
    return target()


def describe(spec: object) -> str:
    """A short label for reports: the path or reference, or the object's class name."""
    if isinstance(spec, (str, os.PathLike)):
        return os.fspath(spec)
    return type(spec).__name__
