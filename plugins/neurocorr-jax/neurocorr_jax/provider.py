"""The JAX activation provider: every intermediate of a batch in one jitted forward pass.

Import-light: jax and flax are imported only when a model is opened (``accepts`` never
imports them; a Flax model can only exist once Flax is imported).
"""

from __future__ import annotations

import difflib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from neurocorr_core import ActivationProvider, LayerInfo, NeurocorrError
from neurocorr_core.interfaces import kind_of

from .kinds import model_kind

if TYPE_CHECKING:
    from .adapters import Adapter

LAYOUTS = ("auto", "nchw", "nhwc")

V = TypeVar("V")


class Lru(Generic[V]):
    """A small thread-safe least-recently-used map of at most ``size`` entries."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


#: Compiled captures shared by the providers of models of one structure (the weights are
#: arguments): (structure, channels_last, layer names, channel means) -> the jitted capture.
PROGRAMS: Lru[Callable[..., Any]] = Lru(32)
#: Layer listings: (structure, layouts to try, probe shape, weight shapes) -> (layers, channels_last).
LISTINGS: Lru[tuple[tuple[LayerInfo, ...], bool]] = Lru(32)


def clear_cache() -> None:
    """Forget every shared compiled capture and layer listing (e.g. to free the memory of the
    plain functions they keep alive, and so their weights)."""
    PROGRAMS.clear()
    LISTINGS.clear()


class JaxProvider(ActivationProvider):
    """Flax nnx modules, Flax linen ``(module, variables)`` tuples and plain JAX functions
    ``fn(x) -> (output, {layer_name: array})``.

    Options: ``layout`` (``auto``, ``nchw``, ``nhwc``): the layout of the model's image
    tensors. A 4-D probe arrives NCHW; for an ``nhwc`` model it is transposed on the way in
    and every 4-D output is transposed back to channels-first. ``auto`` tries the model
    kind's convention first (Flax modules: NHWC, plain functions: NCHW as given) and the
    other if the model rejects it. ``call_kwargs``: extra keyword arguments of a Flax
    module's ``__call__`` (e.g. ``{"train": False}``). ``device``: ``cpu`` (default), ``gpu``,
    ``gpu:1`` (``cuda`` is a synonym): the weights and each batch are put there, so the compiled
    forward pass runs there.
    """

    name = "jax"
    handles = ("Flax nnx Modules, Flax linen (module, variables) tuples, plain JAX functions "
               "fn(x) -> (output, {layer_name: array}) (docs/plugins/jax.md)")
    channel_means = True

    @classmethod
    def accepts(cls, model: object) -> bool:
        return model_kind(model) is not None

    def __init__(self, model: object, *, layout: str = "auto", call_kwargs: dict[str, Any] | None = None,
                 device: str = "cpu", **options: Any) -> None:
        super().__init__(model, **options)  # refuses options it does not take
        if layout not in LAYOUTS:
            raise NeurocorrError(f"layout={layout!r} is not one of {', '.join(LAYOUTS)}: 'nhwc' for a model "
                                 "that takes channels-last images, 'nchw' for channels-first, 'auto' to try")
        import jax

        from .adapters import adapter_for
        from .device import check_device

        self.device = check_device(device)
        self.adapter: Adapter = adapter_for(model, call_kwargs or {})
        self.adapter.params = jax.device_put(self.adapter.params, self.device)
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
        forward pass (nothing is computed). Shapes are per sample, 4-D ones channels-first.
        A model of the same structure, weight shapes and probe shape listed before (by any
        provider) is not traced again."""
        x = _as_input(sample)
        key = self._listing_key(x.shape)
        listing = LISTINGS.get(key) if key is not None else None
        if listing is None:
            listing = self._list(x)
            if key is not None:
                LISTINGS.put(key, listing)
        infos, self.channels_last = listing
        self._layers = {info.name: info for info in infos}
        return list(infos)

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
                outs = run(self.adapter.params, jax.device_put(x, self.device))
            except NeurocorrError:
                raise
            except Exception as exc:  # jax/flax raise many types for a shape they reject
                raise NeurocorrError(self._rejected(x.shape, [(self.channels_last, exc)])) from exc
            host = jax.device_get(outs)  # one transfer for all outputs
            yield {name: _channels_first(np.asarray(arr), self.channels_last)
                   for name, arr in zip(key[0], host, strict=True)}

    # -- tracing and compiling ----------------------------------------------------------------
    def _list(self, x: np.ndarray) -> tuple[tuple[LayerInfo, ...], bool]:
        """Trace every capture of ``x``: the layers in forward order and the layout chosen."""
        closed, meta, channels_last = self._trace(x)
        shapes = [tuple(int(s) for s in aval.shape[1:]) for aval in closed.out_avals]
        infos: dict[str, LayerInfo] = {}
        for index in _forward_order(closed, meta):
            name, op = meta[index]
            shape = shapes[index]
            if channels_last and len(shape) == 3:
                shape = (shape[2], shape[0], shape[1])
            if name not in infos:
                infos[name] = LayerInfo(name, shape, len(infos), kind_of(op), op)
        return tuple(infos.values()), channels_last

    def _trace(self, x: np.ndarray) -> tuple[Any, list[tuple[str, str]], bool]:
        """Trace every capture of ``x`` in each candidate layout until one is accepted."""
        import jax

        from .adapters import ProtocolError

        failures: list[tuple[bool | None, BaseException]] = []
        for channels_last in self._candidates(x.ndim):
            meta: list[tuple[str, str]] = []
            try:
                closed = jax.make_jaxpr(_runner(self.adapter, channels_last, None, meta))(self.adapter.params, x)
            except ProtocolError:
                raise
            except Exception as exc:  # a shape the model rejects: try the next layout
                failures.append((channels_last, exc))
                continue
            return closed, meta, channels_last
        raise NeurocorrError(self._rejected(x.shape, failures))

    def _listing_key(self, shape: tuple[int, ...]) -> Hashable | None:
        """What decides the listing: the structure, the layouts to try, the probe's shape and
        the weights' shapes and dtypes (a same-structure model could hold other shapes)."""
        import jax

        structure = self.adapter.structure()
        if structure is None:
            return None
        leaves, treedef = jax.tree.flatten(self.adapter.params)
        weights = tuple((np.shape(leaf), str(getattr(leaf, "dtype", type(leaf).__name__))) for leaf in leaves)
        try:
            hash(treedef)
        except TypeError:
            return None
        return structure, tuple(self._candidates(len(shape))), shape, treedef, weights

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
        structure = self.adapter.structure()
        key = None if structure is None else (structure, self.channels_last, names, means)
        run = PROGRAMS.get(key) if key is not None else None
        if run is None:
            run = jax.jit(_runner(self.adapter.without_params(), self.channels_last, names, means=means))
            if key is not None:
                PROGRAMS.put(key, run)
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


def _runner(adapter: Adapter, channels_last: bool, names: tuple[str, ...] | None,
            meta: list[tuple[str, str]] | None = None, means: bool = False) -> Callable[[Any, Any], list[Any]]:
    """A pure ``(params, x_nchw) -> [arrays]``: the requested layers as float32, or (``names``
    None) every capture, with the (name, op) of each written into ``meta``. Outputs stay in
    the model's layout; :meth:`JaxProvider.activations` makes them channels-first. With
    ``means``, outputs with spatial axes become their per-channel means (batch, C). It uses
    only ``adapter``'s structure: the weights are the argument ``params``."""
    import jax.numpy as jnp

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
            raise NeurocorrError(f"layers {missing} of {adapter.label} produced no output on a batch of "
                                 f"shape {tuple(x.shape)}; choose layers listed by 'neurocorr layers'")
        outs = [by_name[n].astype(jnp.float32) for n in names]
        return [_spatial_mean(out, channels_last) for out in outs] if means else outs

    return run


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
