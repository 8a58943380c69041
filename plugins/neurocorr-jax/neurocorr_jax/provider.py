"""The JAX activation provider: every intermediate of a batch in one jitted forward pass.

Import-light: jax and flax are imported only when a model is opened (``accepts`` never
imports them; a Flax model can only exist once Flax is imported).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from neurocorr_core import ActivationProvider, LayerInfo, NeurocorrError
from neurocorr_core.interfaces import kind_of

if TYPE_CHECKING:
    from .adapters import Adapter

LAYOUTS = ("auto", "nchw", "nhwc")


def model_kind(model: object) -> str | None:
    """``nnx``, ``linen``, ``linen-unbound``, ``function`` or None; imports nothing."""
    nnx = sys.modules.get("flax.nnx")
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


class JaxProvider(ActivationProvider):
    """Flax nnx modules, Flax linen ``(module, variables)`` tuples and plain JAX functions
    ``fn(x) -> (output, {layer_name: array})``.

    Options: ``layout`` (``auto``, ``nchw``, ``nhwc``): the layout of the model's image
    tensors. A 4-D probe arrives NCHW; for an ``nhwc`` model it is transposed on the way in
    and every 4-D output is transposed back to channels-first. ``auto`` tries the model
    kind's convention first (Flax modules: NHWC, plain functions: NCHW as given) and the
    other if the model rejects it. ``call_kwargs``: extra keyword arguments of a Flax
    module's ``__call__`` (e.g. ``{"train": False}``).
    """

    name = "jax"
    handles = ("Flax nnx Modules, Flax linen (module, variables) tuples, plain JAX functions "
               "fn(x) -> (output, {layer_name: array}) (docs/plugins/jax.md)")
    channel_means = True

    @classmethod
    def accepts(cls, model: object) -> bool:
        return model_kind(model) is not None

    def __init__(self, model: object, *, layout: str = "auto", call_kwargs: dict[str, Any] | None = None,
                 **options: Any) -> None:
        super().__init__(model, **options)  # refuses options it does not take
        if layout not in LAYOUTS:
            raise NeurocorrError(f"layout={layout!r} is not one of {', '.join(LAYOUTS)}: 'nhwc' for a model "
                                 "that takes channels-last images, 'nchw' for channels-first, 'auto' to try")
        from .adapters import adapter_for

        self.adapter: Adapter = adapter_for(model, call_kwargs or {})
        self.label = self.adapter.label
        self.layout = layout
        #: Decided by the first batch: whether the model's image tensors are NHWC.
        self.channels_last: bool | None = None
        self._layers: dict[str, LayerInfo] | None = None
        #: One compiled capture per (layer names, channel means).
        self._compiled: dict[tuple[tuple[str, ...], bool], Callable[..., Any]] = {}

    # -- the provider contract --------------------------------------------------------------
    def layers(self, sample: np.ndarray) -> list[LayerInfo]:
        """Every captured intermediate of ``sample`` in forward order, found by tracing one
        forward pass (nothing is computed). Shapes are per sample, 4-D ones channels-first."""
        x = _as_input(sample)
        closed, meta = self._trace(x)
        shapes = [tuple(int(s) for s in aval.shape[1:]) for aval in closed.out_avals]
        order = _forward_order(closed, meta)
        infos: dict[str, LayerInfo] = {}
        for index in order:
            name, op = meta[index]
            shape = shapes[index]
            if self.channels_last and len(shape) == 3:
                shape = (shape[2], shape[0], shape[1])
            if name not in infos:
                infos[name] = LayerInfo(name, shape, len(infos), kind_of(op), op)
        self._layers = infos
        return list(infos.values())

    def activations(self, batches: Iterable[np.ndarray], layers: Sequence[str], *,
                    channel_means: bool = False) -> Iterator[dict[str, np.ndarray]]:
        """One compiled forward pass per batch yields every requested layer, float32,
        channels-first; the compiled function is cached per set of layers and mode. With
        ``channel_means``, outputs with spatial axes are averaged over them inside the
        compiled function, so only (batch, C) arrays leave the device."""
        import jax

        key = (tuple(layers), channel_means)
        for batch in batches:
            x = _as_input(batch)
            if self._layers is None:
                self.layers(x)
            run = self._compiled.get(key) or self._compile(*key)
            try:
                outs = run(self.adapter.params, x)
            except NeurocorrError:
                raise
            except Exception as exc:  # jax/flax raise many types for a shape they reject
                raise NeurocorrError(self._rejected(x.shape, [(self.channels_last, exc)])) from exc
            host = jax.device_get(outs)  # one transfer for all outputs
            yield {name: _channels_first(np.asarray(arr), self.channels_last)
                   for name, arr in zip(key[0], host, strict=True)}

    # -- tracing and compiling ----------------------------------------------------------------
    def _runner(self, channels_last: bool, names: tuple[str, ...] | None,
                meta: list[tuple[str, str]] | None = None, means: bool = False) -> Callable[[Any, Any], list[Any]]:
        """A pure ``(params, x_nchw) -> [arrays]``: the requested layers as float32, or
        (``names`` None) every capture, with the (name, op) of each written into ``meta``.
        Outputs stay in the model's layout; :meth:`activations` makes them channels-first.
        With ``means``, outputs with spatial axes become their per-channel means (batch, C)."""
        import jax.numpy as jnp

        adapter = self.adapter

        def run(params: Any, x: Any) -> list[Any]:
            if channels_last and x.ndim == 4:
                x = jnp.transpose(x, (0, 2, 3, 1))
            captured = adapter.trace(params, x)
            if names is None:
                if meta is not None:
                    meta[:] = [(c.name, c.op) for c in captured]
                return [c.value for c in captured]
            by_name = {c.name: c.value for c in captured}
            missing = [n for n in names if n not in by_name]
            if missing:
                raise NeurocorrError(f"layers {missing} of {self.label} produced no output on a batch of "
                                     f"shape {tuple(x.shape)}; choose layers listed by 'neurocorr layers'")
            outs = [by_name[n].astype(jnp.float32) for n in names]
            return [_spatial_mean(out, channels_last) for out in outs] if means else outs

        return run

    def _trace(self, x: np.ndarray) -> tuple[Any, list[tuple[str, str]]]:
        """Trace every capture of ``x`` in each candidate layout until one is accepted."""
        import jax

        from .adapters import ProtocolError

        failures: list[tuple[bool | None, BaseException]] = []
        for channels_last in self._candidates(x.ndim):
            meta: list[tuple[str, str]] = []
            try:
                closed = jax.make_jaxpr(self._runner(channels_last, None, meta))(self.adapter.params, x)
            except ProtocolError:
                raise
            except Exception as exc:  # a shape the model rejects: try the next layout
                failures.append((channels_last, exc))
                continue
            self.channels_last = channels_last
            return closed, meta
        raise NeurocorrError(self._rejected(x.shape, failures))

    def _candidates(self, ndim: int) -> list[bool]:
        if self.layout != "auto":
            return [self.layout == "nhwc"]
        if self.channels_last is not None:
            return [self.channels_last]
        first = self.adapter.channels_last
        return [first, not first] if ndim == 4 else [first]

    def _compile(self, names: tuple[str, ...], means: bool) -> Callable[..., Any]:
        import jax

        assert self._layers is not None and self.channels_last is not None
        unknown = [n for n in names if n not in self._layers]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(self._layers), n=5, cutoff=0.3)
            raise NeurocorrError(f"{self.label} has no layer(s) {unknown}; closest names: "
                                 f"{', '.join(close or list(self._layers)[:5])}. List all with 'neurocorr layers'")
        run = jax.jit(self._runner(self.channels_last, names, means=means))
        self._compiled[names, means] = run
        return run

    def _rejected(self, shape: tuple[int, ...], failures: list[tuple[bool | None, BaseException]]) -> str:
        tried = "; ".join(f"as {'NHWC' if last else 'NCHW'}: {_first_line(exc)}" if len(shape) == 4
                          else _first_line(exc) for last, exc in failures)
        hint = ("Give a probe of the shape the model expects (images NCHW, dense (N, features))"
                + ("; set layout='nchw' or 'nhwc' if the automatic choice is wrong" if len(shape) == 4 else "")
                + ("; pass call_kwargs={...} if its __call__ needs more arguments (e.g. train=False)"
                   if self.adapter.kind != "function" else "")
                + (". It can be called with no argument: if it builds the model, pass what it returns "
                   "(on the command line, 'module:builder')" if getattr(self.adapter, "builder_like", False)
                   else ""))
        return f"{self.label} ({self.adapter.kind}) rejected a probe batch of shape {tuple(shape)} ({tried}). {hint}"


def _as_input(batch: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(batch, dtype=np.float32)


def _channels_first(value: np.ndarray, channels_last: bool | None) -> np.ndarray:
    """NHWC -> NCHW as a strided view: no copy (XLA's transpose on CPU cost a third of the
    forward pass); whoever needs another memory order pays for it once, in numpy."""
    return value.transpose(0, 3, 1, 2) if channels_last and value.ndim == 4 else value


def _spatial_mean(value: Any, channels_last: bool | None) -> Any:
    """The per-channel mean (batch, C) of an output with spatial axes, in the model's layout:
    the axes :func:`_channels_first` puts after the channels (NHWC's H, W; else axes 2...)."""
    if value.ndim < 3:
        return value
    axes = (1, 2) if channels_last and value.ndim == 4 else tuple(range(2, value.ndim))
    return value.mean(axis=axes)


def _forward_order(closed: Any, meta: list[tuple[str, str]]) -> list[int]:
    """Captures sorted by the step of the traced program that computed them (the order the
    forward pass produced them); ties (a container and its last child, an identity layer,
    values computed by one nested jit) put deeper names first, then keep capture order."""
    producer: dict[Any, int] = {}
    for step, eqn in enumerate(closed.jaxpr.eqns):
        for var in eqn.outvars:
            producer[var] = step

    def step_of(var: Any) -> int:
        try:
            return producer.get(var, -1)
        except TypeError:  # a literal (constant) output is not hashable
            return -1

    steps = [step_of(var) for var in closed.jaxpr.outvars]
    return sorted(range(len(meta)), key=lambda i: (steps[i], -meta[i][0].count("."), i))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
