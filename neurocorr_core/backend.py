"""Where the expensive products of the streaming statistics run: numpy's BLAS or PyTorch.

:class:`~neurocorr_core.stats.CoMoments` spends nearly all its time in one operation,
``acc += left^T @ right``: a float32 GEMM over a chunk of samples, added into a float64
accumulator (plus, rarely, a float64 correction of small rank). A backend owns the
accumulators and runs those operations:

- ``numpy`` (the default): the GEMM goes to numpy's BLAS (OpenBLAS) in panels of bounded
  size, each added into the float64 accumulator at once, so no (n, m) temporary is made.
  Its threads are BLAS's own, so ``threadpoolctl.threadpool_limits`` governs them.
- ``torch`` (optional, PyTorch installed): the accumulators live on a torch device, ``cpu`` or
  ``cuda`` (a GPU: chunks are copied there, the results come back once). On the CPU it uses at
  most as many threads as BLAS is allowed (threadpoolctl), so a limit set for numpy holds here.

Choose with ``CoMoments(..., backend=...)``, :func:`set_default`, or the environment variable
``NEUROCORR_BACKEND`` (``numpy``, ``torch``, ``torch:cpu``, ``torch:cuda``, ``auto``). ``auto``
(the default) picks ``torch:cuda`` when PyTorch is already imported and sees a GPU, else
``numpy``; it never imports PyTorch itself (that costs a second and is a framework the core
does not depend on).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np

from .errors import NeurocorrError

ENV = "NEUROCORR_BACKEND"
#: float32 elements of one GEMM panel's output (64 MB): bounds the scratch whatever the width.
PANEL_ELEMENTS = 1 << 24
#: float64 elements per step of a rank-r update (8 MB): bounds the temporary.
BLOCK_ELEMENTS = 1 << 20
#: Accumulators of at most this many elements (512 x 512 pairs) get float64 products. A
#: float32 sum of k products errs by about sqrt(k) roundings: on real activations (1,797
#: digits, docs/plugins/pearson.md) |r - r_float64| reached 1.1e-6. Small products are cheap
#: in float64 (a 512-wide self-product over 10,000 samples: 0.11 s on one thread, float32:
#: 0.06 s) and run on one thread: multithreaded OpenBLAS ran them 5-10x slower on a loaded
#: 2-core machine. Wide ones would cost twice the float32 GEMM, so they stay float32.
SMALL_PRODUCT = 1 << 18
#: Samples per float64 product of a small accumulator (bounds the float64 copy: 8 MB at 512).
SMALL_ROWS = 2048
#: Samples summed per float32 GEMM of a small accumulator on a torch GPU (float64 is slow
#: there; on torch's CPU small products are float64, as numpy's): 128 keeps |r - r_float64|
#: under 5e-7 on the digits activations.
DEPTH = 128


def depth(samples: int, n: int, m: int) -> int:
    """Samples per float32 GEMM for an (n, m) accumulator on a torch GPU (:data:`DEPTH`)."""
    return DEPTH if n * m <= SMALL_PRODUCT else max(samples, 1)


_default: str | None = None


class Backend(Protocol):
    """What :class:`~neurocorr_core.stats.CoMoments` needs from a backend. Accumulators
    (``acc``) are float64 (n, m) arrays of the backend's own kind."""

    name: str

    def zeros(self, n: int, m: int) -> Any:
        """A new float64 (n, m) accumulator of zeros."""

    def add_product(self, acc: Any, left: np.ndarray, right: np.ndarray) -> None:
        """``acc += left^T @ right``, the product in float32 (float64 for a small ``acc``:
        :data:`SMALL_PRODUCT`): ``left`` (k, n) and ``right`` (k, m) float32 with unit column
        stride. Called once per chunk of k samples."""

    def add(self, acc: Any, other: Any, u: np.ndarray, v: np.ndarray) -> None:
        """``acc += other + u @ v^T`` in float64; ``other``: None, or an accumulator of any
        backend or numpy; ``u`` (n, r), ``v`` (m, r) float64 with r small. Called rarely."""

    def to_numpy(self, acc: Any) -> np.ndarray:
        """The accumulator as a numpy array (a view when it already lives in host memory)."""

    def scaled(self, acc: Any, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        """A new numpy array ``acc * row[:, None] * col[None, :]`` (float64)."""


class NumpyBackend:
    """numpy accumulators; float32 GEMMs in numpy's BLAS."""

    name = "numpy"

    def __init__(self) -> None:
        self._scratch = np.empty(0, dtype=np.float32)

    def zeros(self, n: int, m: int) -> np.ndarray:
        return np.zeros((n, m))

    def _panel(self, rows: int, cols: int) -> np.ndarray:
        if self._scratch.size < rows * cols:
            self._scratch = np.empty(rows * cols, dtype=np.float32)
        return self._scratch[:rows * cols].reshape(rows, cols)

    def add_product(self, acc: np.ndarray, left: np.ndarray, right: np.ndarray) -> None:
        n, m = acc.shape
        if n * m <= SMALL_PRODUCT:
            _add_product64(acc, left, right)
            return
        panel = max(1, min(n, PANEL_ELEMENTS // max(m, 1)))
        for r0 in range(0, n, panel):
            r1 = min(n, r0 + panel)
            product = self._panel(r1 - r0, m)
            np.matmul(left[:, r0:r1].T, right, out=product)  # the float32 GEMM: all the flops
            np.add(acc[r0:r1], product, out=acc[r0:r1])

    def add(self, acc: np.ndarray, other: Any, u: np.ndarray, v: np.ndarray) -> None:
        """Block by block, so that no (n, m) temporary is made."""
        other = None if other is None else _host(other)
        n, m = acc.shape
        vt = np.ascontiguousarray(v.T)
        step = max(1, BLOCK_ELEMENTS // max(m, 1))
        with single_thread(n * m >= BLOCK_ELEMENTS):
            for b0 in range(0, n, step):
                b1 = min(n, b0 + step)
                if other is not None:
                    acc[b0:b1] += other[b0:b1]
                if u.shape[1]:
                    acc[b0:b1] += u[b0:b1] @ vt  # float64, rank r: one small GEMM per block

    def to_numpy(self, acc: np.ndarray) -> np.ndarray:
        return acc

    def scaled(self, acc: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        out = np.multiply(acc, row[:, None])
        out *= col[None, :]
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {}  # the scratch is rebuilt on demand

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]


class TorchBackend:
    """PyTorch accumulators on ``device`` (``cpu``, ``cuda``, ``cuda:1``, ...)."""

    def __init__(self, device: str = "cpu") -> None:
        torch = _torch()
        try:
            self.device = torch.device(device)
            torch.zeros(1, device=self.device)
        except (RuntimeError, AssertionError) as exc:
            raise NeurocorrError(f"backend torch: device {device!r} is not usable here ({exc}); use "
                                 "'torch:cpu' or the numpy backend") from exc
        self.name = f"torch:{self.device}"
        self._torch = torch

    def zeros(self, n: int, m: int) -> Any:
        return self._torch.zeros((n, m), dtype=self._torch.float64, device=self.device)

    def _tensor(self, a: np.ndarray) -> Any:
        return self._torch.from_numpy(np.ascontiguousarray(a)).to(self.device, non_blocking=True)

    def add_product(self, acc: Any, left: np.ndarray, right: np.ndarray) -> None:
        n, m = acc.shape
        panel = max(1, min(n, PANEL_ELEMENTS // max(m, 1)))
        with self._threads():
            lt = self._tensor(left)
            rt = lt if right is left else self._tensor(right)
            step = depth(lt.shape[0], n, m)
            if n * m <= SMALL_PRODUCT and self.device.type == "cpu":  # float64, as numpy
                lt, rt, step = lt.double(), rt.double(), lt.shape[0]
            for r0 in range(0, n, panel):  # panels bound the float32 temporary, as for numpy
                for k0 in range(0, lt.shape[0], step):
                    acc[r0:r0 + panel].add_(lt[k0:k0 + step, r0:r0 + panel].T @ rt[k0:k0 + step])

    def add(self, acc: Any, other: Any, u: np.ndarray, v: np.ndarray) -> None:
        with self._threads():
            if other is not None:
                is_tensor = isinstance(other, self._torch.Tensor)
                acc.add_(other.to(self.device) if is_tensor else self._tensor(other))
            if u.shape[1]:
                acc.addmm_(self._tensor(u), self._tensor(v).T)

    def to_numpy(self, acc: Any) -> np.ndarray:
        return np.asarray(acc.detach().cpu().numpy())

    def scaled(self, acc: Any, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        with self._threads():
            out = acc * self._tensor(row)[:, None]
            out *= self._tensor(col)[None, :]
            return self.to_numpy(out)

    @contextmanager
    def _threads(self) -> Any:
        """On the CPU, no more threads than BLAS may use (threadpoolctl's limit, if any)."""
        if self.device.type != "cpu":
            yield
            return
        torch = self._torch
        before = torch.get_num_threads()
        allowed = min(before, blas_threads() or before)
        if allowed != before:
            torch.set_num_threads(allowed)
        try:
            yield
        finally:
            if allowed != before:
                torch.set_num_threads(before)

    def __getstate__(self) -> dict[str, Any]:
        return {"device": str(self.device)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["device"])  # type: ignore[misc]


def _add_product64(acc: np.ndarray, left: np.ndarray, right: np.ndarray) -> None:
    """``acc += left^T @ right`` in float64, SMALL_ROWS samples at a time, on one thread. A
    self-product (``right`` the same memory as ``left``) reuses the copy, so numpy runs SYRK."""
    same = left.__array_interface__ == right.__array_interface__
    with single_thread():
        for k0 in range(0, left.shape[0], SMALL_ROWS):
            lo = left[k0:k0 + SMALL_ROWS].astype(np.float64)
            acc += lo.T @ (lo if same else right[k0:k0 + SMALL_ROWS].astype(np.float64))


def _host(acc: Any) -> np.ndarray:
    if isinstance(acc, np.ndarray):
        return acc
    return np.asarray(acc.detach().cpu().numpy())  # a torch tensor


_controller: Any = None


def _threadpools() -> Any:
    """threadpoolctl's controller, made once (None without threadpoolctl): making one looks up
    the loaded libraries, 3 ms with torch loaded, longer than a small product takes."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return None
        _controller = ThreadpoolController()
    return _controller


@contextmanager
def single_thread(needed: bool = True) -> Any:
    """BLAS on one thread (if threadpoolctl is installed and ``needed``): a GEMM of small
    rank is bound by memory, and multithreaded OpenBLAS runs such skinny products several
    times slower on a busy machine."""
    pools = _threadpools() if needed else None
    if pools is None:
        yield
        return
    with pools.limit(limits=1, user_api="blas"):
        yield


def blas_threads() -> int | None:
    """The number of threads numpy's BLAS may use now (threadpoolctl), or None if unknown."""
    pools = _threadpools()
    counts = [int(info["num_threads"]) for info in pools.info() if info.get("user_api") == "blas"] if pools else []
    return min(counts) if counts else None


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise NeurocorrError("backend torch needs PyTorch: pip install torch (for a CPU-only machine: "
                             "pip install torch --index-url https://download.pytorch.org/whl/cpu), "
                             "or use the numpy backend") from exc
    return torch


def set_default(spec: str | None) -> None:
    """The backend used when a :class:`CoMoments` is built without one (None: back to the
    environment variable ``NEUROCORR_BACKEND``, else ``auto``)."""
    if spec is not None:
        resolve(spec)  # fail now, not at the first comparison
    global _default
    _default = spec


def resolve(spec: str | Backend | None = None) -> Backend:
    """A backend from its name: ``numpy``, ``torch`` (the GPU if PyTorch sees one, else the
    CPU), ``torch:DEVICE`` or ``auto``; None means the default (:func:`set_default`, then
    ``NEUROCORR_BACKEND``, then ``auto``). A backend object is returned as it is."""
    if spec is not None and not isinstance(spec, str):
        return spec
    name = (spec or _default or os.environ.get(ENV) or "auto").strip().lower()
    if name == "numpy":
        return NumpyBackend()
    if name == "auto":
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            return TorchBackend("cuda")
        return NumpyBackend()
    if name == "torch":
        return TorchBackend("cuda" if _torch().cuda.is_available() else "cpu")
    if name.startswith("torch:"):
        return TorchBackend(name.split(":", 1)[1])
    raise NeurocorrError(f"unknown backend {spec or name!r} (from {ENV!r} if not given); choose numpy, "
                         "torch, torch:cpu, torch:cuda or auto")
