"""neurocorr plugin: activations of JAX models (Flax nnx modules, Flax linen modules with
their variables, and plain JAX functions that return their intermediates)."""

from neurocorr_core import ActivationProvider, hookimpl, require

require("jax", "pip install neurocorr-jax (or: pip install jax flax)")

from .provider import JaxProvider  # noqa: E402 - only once jax is known to exist


@hookimpl
def neurocorr_activation_providers() -> list[type[ActivationProvider]]:
    return [JaxProvider]


__all__ = ["JaxProvider"]
