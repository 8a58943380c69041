"""Activation functions called inside ``forward`` (``F.relu``, ``torch.tanh``, ``x.relu()``) as layers.

Hooks only see modules, so a model whose ``forward`` calls ``F.relu`` would have no activation
layers. While the provider runs a forward pass, a ``TorchFunctionMode`` sees every call of a torch
function; the calls of the activation functions below become layers named after the module whose
``forward`` made them: ``block1.relu()``, ``block1.relu()#1`` for its second call, ``relu()`` in the
top module's own ``forward``. A call made by an activation module itself (``nn.ReLU`` calls
``F.relu``) is that module's layer already and is not recorded twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from neurocorr_core.interfaces import call_name, kind_of

#: TorchScript node kinds of the same functions (``aten::relu_`` is the in-place form).
SCRIPT_OPS = frozenset({"relu", "relu6", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid",
                        "mish", "leaky_relu", "elu", "selu", "celu", "softplus", "hardtanh"})


@functools.cache
def activation_functions() -> dict[Any, str]:
    """Each captured torch function (in its functional, ``torch.*`` and method forms) -> its op name."""
    import torch
    import torch.nn.functional as F

    T = torch.Tensor
    forms: dict[str, list[Any]] = {
        "relu": [torch.relu, torch.relu_, F.relu, F.relu_, T.relu, T.relu_],
        "relu6": [F.relu6],
        "gelu": [F.gelu],
        "silu": [F.silu],
        "sigmoid": [torch.sigmoid, torch.sigmoid_, F.sigmoid, T.sigmoid, T.sigmoid_],
        "tanh": [torch.tanh, torch.tanh_, F.tanh, T.tanh, T.tanh_],
        "hardswish": [F.hardswish],
        "hardsigmoid": [F.hardsigmoid],
        "mish": [F.mish],
        "leaky_relu": [F.leaky_relu, F.leaky_relu_],
        "elu": [F.elu, F.elu_],
        "selu": [F.selu, torch.selu, torch.selu_],
        "celu": [F.celu],
        "softplus": [F.softplus],
        "hardtanh": [F.hardtanh, F.hardtanh_],
    }
    return {function: op for op, functions in forms.items() for function in functions}


def is_activation_module(module: Any) -> bool:
    """A leaf module that is an activation (``nn.ReLU``, timm's ``GELU``): its own output is the layer."""
    return not any(True for _ in module.children()) and kind_of(type(module).__name__) == "activation"


#: Called with (layer name, op name, output tensor) for every captured function call.
Record = Callable[[str, str, Any], None]


class ModuleStack:
    """Which module's ``forward`` is running (pre-hooks push, hooks pop): the functional calls'
    place in the module tree."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, Any]] = []
        self.calls: dict[str, int] = {}

    def hooks(self, module: Any) -> list[Any]:
        """Register push/pop hooks on ``module`` and all its submodules; returns the handles."""
        handles = []
        for name, sub in module.named_modules():
            handles.append(sub.register_forward_pre_hook(functools.partial(self._push, name)))
            handles.append(sub.register_forward_hook(self._pop, always_call=True))
        return handles

    def _push(self, name: str, module: Any, args: Any) -> None:
        self.frames.append((name, module))

    def _pop(self, module: Any, args: Any, out: Any) -> None:
        if self.frames and self.frames[-1][1] is module:
            self.frames.pop()

    def name(self, op: str) -> str | None:
        """The layer name of a call of ``op`` now (and count it), or None inside an activation module."""
        where, module = self.frames[-1] if self.frames else ("", None)
        if module is not None and is_activation_module(module):
            return None
        base = f"{where}.{op}()" if where else f"{op}()"
        calls = self.calls.get(base, 0)
        self.calls[base] = calls + 1
        return call_name(base, calls)


def capture_mode(stack: ModuleStack, record: Record) -> Any:
    """A ``TorchFunctionMode`` that hands every activation function's output to ``record``."""
    from torch.overrides import TorchFunctionMode

    functions = activation_functions()

    class _Capture(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            op = functions.get(func)
            if op is not None:
                name = stack.name(op)
                if name is not None:
                    record(name, op, out)
            return out

    return _Capture()
