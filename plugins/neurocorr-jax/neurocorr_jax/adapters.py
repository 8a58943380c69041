"""One adapter per kind of JAX model, each a pure, traceable ``trace(params, x)``.

``trace`` runs the model once on a batch ``x`` (already in the model's layout) and returns
every capturable intermediate as a :class:`Captured` (name, op, array). The provider wraps
it in ``jax.jit`` (capture) or ``jax.make_jaxpr`` (listing, forward order), so the whole
forward pass with all its intermediates is one compiled program.

- Flax nnx: ``nnx.capture(model, nnx.Intermediate, method_outputs=nnx.Intermediate)``
  records every submodule method's output plus the values the model sows itself.
- Flax linen: ``apply(..., capture_intermediates=..., mutable=["intermediates"])``.
- Plain functions: ``fn(x) -> (output, {layer_name: array})`` (see :data:`PROTOCOL`).

The provider orders the captures by the step of the traced program that computed them.

Activation functions are plain functions in Flax, not modules. Bare functions inside an
``nnx.Sequential`` / ``linen.Sequential`` (``nnx.relu``, ``partial(nnx.max_pool, ...)``) are
wrapped, in the provider's private copy of the model, into small modules so their outputs
are layers named after the position (``layers.1``) with the function's name as op (``relu``).
Anywhere else, sow the value: its name gives its op (``relu1`` -> ``relu``).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import re
import sys
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from neurocorr_core import NeurocorrError

from .kinds import model_kind

PROTOCOL = ("the plain-function protocol is fn(x) -> (output, {layer_name: array, ...}): one argument, "
            "the batch; it returns its output and a dict of the intermediates to expose, in forward "
            "order, each an array whose first axis is the batch (name layers after their op, e.g. "
            "'conv1', 'relu1', 'dense1', so that kind:activation finds them)")

SUPPORTED = ("Flax nnx Modules; Flax linen Modules as a (module, variables) tuple; plain JAX "
             "functions fn(x) -> (output, {layer_name: array})")


class ProtocolError(NeurocorrError):
    """A plain function broke the documented protocol (not a probe-shape problem)."""


class Captured(NamedTuple):
    """One intermediate of one forward pass: ``value`` is (batch, ...) in the model's layout."""

    name: str
    op: str
    value: Any


class Adapter:
    """The common face of the three model kinds."""

    #: ``nnx``, ``linen`` or ``function``
    kind: str = ""
    #: The model's image tensors are NHWC unless the probe or the user says otherwise.
    channels_last: bool = True
    #: The pytree of weights passed to ``trace`` as a jit argument (not baked in as constants).
    params: Any = None
    label: str = ""

    def trace(self, params: Any, x: Any) -> list[Captured]:
        raise NotImplementedError

    def structure(self) -> Hashable | None:
        """What decides the traced program besides the weights, so that providers of models
        with equal structures share one compiled program (the weights are its arguments);
        None when that cannot be hashed: then nothing is shared."""
        return None

    def without_params(self) -> Adapter:
        """A copy without the weights, for a program cached beyond this provider's life:
        it must not keep the first model's weights alive."""
        stripped = copy.copy(self)
        stripped.params = None
        return stripped


def adapter_for(model: object, call_kwargs: Mapping[str, Any]) -> Adapter:
    """The adapter for ``model``; an error that says what is supported otherwise."""
    kind = model_kind(model)
    if kind == "nnx":
        return NnxAdapter(model, call_kwargs)
    if kind == "linen":
        assert isinstance(model, tuple)
        return LinenAdapter(model[0], model[1], call_kwargs)
    if kind == "linen-unbound":
        raise NeurocorrError(
            f"the Flax linen module {type(model).__name__} carries no weights; pass it with its "
            "variables as a tuple (module, variables), e.g. (model, model.init(jax.random.key(0), x))")
    if kind == "function":
        if call_kwargs:
            raise NeurocorrError("call_kwargs applies to Flax modules only; for a plain function, "
                                 "bind the arguments yourself (functools.partial)")
        assert callable(model)
        return FunctionAdapter(model)
    raise NeurocorrError(f"the jax provider cannot load an object of type {type(model).__module__}."
                         f"{type(model).__qualname__}; it supports {SUPPORTED}")


# -- naming ---------------------------------------------------------------------------------
def op_from_name(name: str) -> str:
    """The op a layer name implies: ``block1/relu_2`` -> ``relu``, ``conv1`` -> ``conv``."""
    last = re.split(r"[./]", name)[-1]
    return re.sub(r"[_\-]?\d+$", "", last) or last


def function_name(fn: object) -> str:
    """``relu`` for ``nnx.relu`` and ``partial(nnx.relu)``; ``function`` for a lambda."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__name__", type(fn).__name__)
    return "function" if name == "<lambda>" else str(name)


def _join(parts: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in parts)


def _usable(value: object, batch: int) -> bool:
    """An array with the batch as first axis and a real number type: a layer output."""
    return (isinstance(value, jax.Array) and value.ndim >= 1 and value.shape[0] == batch
            and (jnp.issubdtype(value.dtype, jnp.floating) or jnp.issubdtype(value.dtype, jnp.integer)))


def _calls(name: str, op: str, values: object, batch: int) -> Iterator[Captured]:
    """A sown value is a tuple with one entry per call: ``name``, ``name@1``, ``name@2`` ..."""
    for i, value in enumerate(values if isinstance(values, tuple) else (values,)):
        if _usable(value, batch):
            yield Captured(name if i == 0 else f"{name}@{i}", op, value)


def _is_method(cls: type, key: object) -> bool:
    return isinstance(key, str) and callable(getattr(cls, key, None))


def _module_op(module: object, function: type) -> str:
    """A module's op: its class name, or for a wrapped bare function the function's name."""
    return function_name(getattr(module, "fn", None)) if isinstance(module, function) else type(module).__name__


def _describe(path: tuple[Any, ...], ops: Mapping[tuple[Any, ...], str],
              types: Mapping[tuple[Any, ...], type]) -> tuple[str, str] | None:
    """Name and op of a captured path: a module method's output or a sown value; None for the
    model's own output (the root ``__call__``), which the last layer already shows."""
    owner, key = path[:-1], path[-1]
    if owner in types and _is_method(types[owner], key):
        if key == "__call__":
            return (_join(owner), ops[owner]) if owner else None
        return _join(path), str(key)
    return _join(path), op_from_name(str(key))


# -- what a compiled program depends on -------------------------------------------------------
#: Fields of Flax's own linen layers that only create parameters (never called by ``apply``
#: with complete variables): builds of one architecture with other initialisers share programs.
INITIALISERS = frozenset({"kernel_init", "bias_init", "scale_init", "embedding_init", "recurrent_kernel_init"})


class _Same:
    """Hashes and compares by identity (and keeps the object alive, so its id stays its own)."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj


def _frozen(value: Any) -> Any:
    """``value`` as nested tuples (lists, dicts, partials, and linen modules field by field
    without ``parent``), so that equal configurations compare and hash equal."""
    nn = sys.modules.get("flax.linen")  # a linen module exists only once linen is imported
    if nn is not None and isinstance(value, nn.Module):
        skip = INITIALISERS if type(value).__module__.startswith("flax.linen") else frozenset()
        return (type(value), tuple((f.name, _frozen(getattr(value, f.name))) for f in dataclasses.fields(value)
                                   if f.name != "parent" and f.name not in skip))
    if isinstance(value, functools.partial):  # functools compares partials by identity
        return (functools.partial, _frozen(value.func), _frozen(value.args), _frozen(value.keywords))
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_frozen(v) for v in value))
    if isinstance(value, Mapping):
        return (dict, tuple((k, _frozen(v)) for k, v in value.items()))
    return value


class EqualPartial(functools.partial):
    """A bare ``partial`` of an nnx Sequential, equal to one of the same function and arguments
    (a static attribute, it is part of the GraphDef: builds of one model then share programs)."""

    def _key(self) -> Hashable:
        key = _frozen(self)
        return _Same(self) if _hashable(key) is None else key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EqualPartial) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _hashable(key: Hashable) -> Hashable | None:
    """``key``, or None if something in it cannot be hashed (an array attribute, say)."""
    try:
        hash(key)
    except TypeError:
        return None
    return key


# -- Flax nnx -------------------------------------------------------------------------------
@functools.cache
def _nnx_function_module() -> type:
    from flax import nnx

    class Function(nnx.Module):
        """A bare function of an ``nnx.Sequential``, as a module so its output is captured."""

        def __init__(self, fn: Callable[..., Any]) -> None:
            self.fn = fn

        def __call__(self, *args: Any) -> Any:
            return self.fn(*args)

    return Function


class NnxAdapter(Adapter):
    kind = "nnx"

    def __init__(self, model: Any, call_kwargs: Mapping[str, Any]) -> None:
        from flax import nnx

        self.label = type(model).__name__
        self.call_kwargs = dict(call_kwargs)
        # A private copy in inference mode (Dropout off, BatchNorm on running statistics):
        # the user's model is never modified.
        model_copy = nnx.clone(model)
        model_copy.set_attributes(deterministic=True, use_running_average=True, raise_if_not_found=False)
        _wrap_nnx_functions(model_copy)
        function = _nnx_function_module()
        self.types: dict[tuple[Any, ...], type] = {}
        self.ops: dict[tuple[Any, ...], str] = {}
        for path, module in nnx.iter_modules(model_copy):
            self.types[tuple(path)] = type(module)
            self.ops[tuple(path)] = _module_op(module, function)
        self.graphdef, self.params = nnx.split(model_copy)

    def structure(self) -> Hashable | None:
        # The GraphDef holds the module types, the wiring and every static attribute (the
        # wrapped bare functions too): equal GraphDefs run the same program on their states.
        return _hashable(("nnx", self.graphdef, _frozen(self.call_kwargs)))

    def trace(self, params: Any, x: Any) -> list[Captured]:
        from flax import nnx

        model = nnx.merge(self.graphdef, params)
        run = nnx.capture(model, nnx.Intermediate, method_outputs=nnx.Intermediate)
        _, state = run(x, **self.call_kwargs)
        out: list[Captured] = []
        for path, var in nnx.to_flat_state(state):
            described = _describe(tuple(path), self.ops, self.types)
            if described is not None:
                out.extend(_calls(*described, var.get_value(), x.shape[0]))
        return out


def _wrap_nnx_functions(model: Any) -> None:
    from flax import nnx

    function = _nnx_function_module()
    for _, module in list(nnx.iter_modules(model)):
        if isinstance(module, nnx.Sequential):
            for i, fn in enumerate(list(module.layers)):
                if callable(fn) and not isinstance(fn, nnx.Module):
                    fn = EqualPartial(fn.func, *fn.args, **fn.keywords) if isinstance(fn, functools.partial) else fn
                    module.layers[i] = nnx.data(function(fn))


# -- Flax linen -----------------------------------------------------------------------------
@functools.cache
def _linen_function_module() -> type:
    import flax.linen as nn

    class Function(nn.Module):
        """A bare function of a ``linen.Sequential``, as a module so its output is captured."""

        fn: Callable[..., Any]

        def __call__(self, *args: Any) -> Any:
            return self.fn(*args)

    return Function


class LinenAdapter(Adapter):
    kind = "linen"

    def __init__(self, module: Any, variables: object, call_kwargs: Mapping[str, Any]) -> None:
        if not isinstance(variables, Mapping):
            raise NeurocorrError(
                f"the second item of a linen (module, variables) tuple must be the variables dict "
                f"returned by module.init(...) (with a 'params' entry), not {type(variables).__name__}")
        self.label = type(module).__name__
        self.module = _wrap_linen_functions(module)
        self.params = variables
        self.call_kwargs = dict(call_kwargs)

    def structure(self) -> Hashable | None:
        return _hashable(("linen", _frozen(self.module), _frozen(self.call_kwargs)))

    def trace(self, params: Any, x: Any) -> list[Captured]:
        function = _linen_function_module()
        ops: dict[tuple[Any, ...], str] = {}
        types: dict[tuple[Any, ...], type] = {}

        def record(module: Any, method: str) -> bool:
            path = tuple(module.path)
            types[path] = type(module)
            ops[path] = _module_op(module, function)
            return True

        _, state = self.module.apply(params, x, capture_intermediates=record,
                                     mutable=["intermediates"], **self.call_kwargs)
        out: list[Captured] = []
        for path, values in _flatten(state.get("intermediates", {}), ()):
            described = _describe(path, ops, types)
            if described is not None:
                out.extend(_calls(*described, values, x.shape[0]))
        return out


def _wrap_linen_functions(module: Any) -> Any:
    """A copy of a linen Sequential (nested ones too) whose bare functions are modules;
    the submodule names (``layers_<i>``) and so the variables stay the same."""
    import flax.linen as nn

    if not isinstance(module, nn.Sequential):
        return module
    function = _linen_function_module()
    layers = [_wrap_linen_functions(f) if isinstance(f, nn.Module) else function(fn=f) if callable(f) else f
              for f in module.layers]
    return module.clone(layers=layers)


def _flatten(tree: Mapping[Any, Any], prefix: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], Any]]:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, (*prefix, key))
        else:
            yield (*prefix, key), value


# -- plain functions ------------------------------------------------------------------------
class FunctionAdapter(Adapter):
    kind = "function"
    channels_last = False

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.label = function_name(fn)
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # no signature to check (a builtin): calling will tell
            signature = None
        if signature is not None and not _binds(signature, None):
            raise ProtocolError(f"the function {self.label}{signature} cannot be called with one "
                                f"argument; {PROTOCOL}")
        #: A function callable with no argument is probably a model builder given by mistake.
        self.builder_like = signature is not None and _binds(signature)
        # A jitted function would return its dict with sorted keys (jit flattens pytrees);
        # trace the Python function inside: the capture is jitted as a whole anyway.
        self.fn = fn.__wrapped__ if hasattr(fn, "lower") and hasattr(fn, "__wrapped__") else fn

    def structure(self) -> Hashable | None:
        # A function closes over its weights, which are constants of its program: only the
        # very same function object may reuse it.
        return ("function", _Same(self.fn))

    def trace(self, params: Any, x: Any) -> list[Captured]:
        result = self.fn(x)
        if not (isinstance(result, (tuple, list)) and len(result) == 2 and isinstance(result[1], Mapping)):
            hint = (" It returned a function: if it builds the model, call it (or give "
                    "'module:builder' on the command line)." if callable(result) else "")
            raise ProtocolError(f"the function {self.label} returned {_what(result)}; {PROTOCOL}.{hint}")
        out: list[Captured] = []
        for name, value in result[1].items():
            if not isinstance(name, str) or not name:
                raise ProtocolError(f"the function {self.label} returned an intermediate named {name!r}; "
                                    f"names must be non-empty strings; {PROTOCOL}")
            value = jnp.asarray(value) if isinstance(value, np.ndarray) else value
            if not _usable(value, x.shape[0]):
                raise ProtocolError(
                    f"the intermediate {name!r} of {self.label} is {_what(value)}, not a real-valued array "
                    f"whose first axis is the batch ({x.shape[0]}); {PROTOCOL}")
            out.append(Captured(name, op_from_name(name), value))
        if not out:
            raise ProtocolError(f"the function {self.label} returned no intermediates; {PROTOCOL}")
        return out


def _binds(signature: inspect.Signature, *args: object) -> bool:
    try:
        signature.bind(*args)
    except TypeError:
        return False
    return True


def _what(value: object) -> str:
    if isinstance(value, (jax.Array, np.ndarray)):
        return f"an array of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} item(s)"
    return f"a {type(value).__name__}"
