"""What kind of JAX model an object is, decided without importing JAX or Flax.

Its own module because both sides need it: the provider's ``accepts`` (which must stay
import-light) and the adapters, which build the adapter of that kind; the provider imports
the adapters, so the adapters cannot import the provider back.
"""

from __future__ import annotations

import functools
import inspect
import sys


def model_kind(model: object) -> str | None:
    """``nnx``, ``linen``, ``linen-unbound``, ``function`` or None; imports nothing."""
    nnx = sys.modules.get("flax.nnx")  # a Flax model can only exist once Flax is imported
    linen = sys.modules.get("flax.linen")
    if nnx is not None and isinstance(model, nnx.Module):
        return "nnx"
    if linen is not None:
        if isinstance(model, tuple) and len(model) == 2 and isinstance(model[0], linen.Module):
            return "linen"
        if isinstance(model, linen.Module):
            return "linen-unbound"  # accepted, so that the error can say to pass its variables
    if inspect.isfunction(model) or isinstance(model, functools.partial):
        return "function"
    if "jax" in sys.modules and callable(model) and hasattr(model, "lower") and hasattr(model, "__wrapped__"):
        return "function"  # a jax.jit-wrapped function
    return None
