"""The real ``neurocorr`` command (``bad_input.neurocorr``) with the numpy test provider, and the
folders the output and cache cases need.

The provider reaches the child process the way an installed plugin does: through an entry
point, here of a test-only distribution (a ``*.dist-info`` folder) on ``PYTHONPATH`` beside
``tests/``. The deep-learning plugins are disabled, so no framework is imported.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
FRAMEWORKS = "torch,tensorflow,jax,onnx"


def cli_env(site: Path) -> dict[str, str]:
    """The environment of a child ``neurocorr`` that has the numpy test provider;
    ``site`` (created) holds the test distribution's metadata."""
    info = site / "numpy_test_provider-0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: numpy-test-provider\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text("[neurocorr]\nnumpy-test = numpy_models:plugin\n")
    path = os.pathsep.join(p for p in (str(site), str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "NEUROCORR_DISABLE_PLUGINS": FRAMEWORKS, "PYTHONDONTWRITEBYTECODE": "1",
            "NEUROCORR_CACHE_DIR": str(site / "default-cache")}


def write_probe(path: Path, samples: int = 40, seed: int = 0) -> Path:
    """A probe the grid models take: (samples, 64) float32."""
    np.save(path, np.random.default_rng(seed).normal(size=(samples, 64)).astype(np.float32))
    return path


def mount_tmpfs(folder: Path, options: str) -> None:
    """Mount a fresh tmpfs on ``folder``, or skip the test saying why (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")


def unmount(folder: Path) -> None:
    subprocess.run(["umount", str(folder)], capture_output=True, check=False)


@contextlib.contextmanager
def read_only_folder(folder: Path, fill: Callable[[Path], object] | None = None) -> Iterator[Path]:
    """``folder``, holding what ``fill`` puts there, where the current user can neither create
    nor delete a file: a tmpfs remounted read-only for root (who ignores permissions), else
    folders without write permission."""
    if os.geteuid() == 0:
        mount_tmpfs(folder, "size=256k,mode=755")
        try:
            if fill is not None:
                fill(folder)
            done = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"cannot remount a tmpfs read-only: {done.stderr.strip()}")
            yield folder
        finally:
            unmount(folder)
        return
    folder.mkdir(parents=True, exist_ok=True)
    if fill is not None:
        fill(folder)
    folders = [folder, *(p for p in folder.rglob("*") if p.is_dir() and not p.is_symlink())]
    for sub in folders:
        sub.chmod(0o555)
    try:
        yield folder
    finally:
        for sub in folders:
            sub.chmod(0o755)
