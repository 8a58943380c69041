"""What the fault tests run: a numpy MLP whose forward pass says when it started and then
waits, and the real ``neurocorr`` command with the numpy test provider registered.

``fault_models:gated_mlp`` is ``grid_models:mlp_a``'s network (same seed and widths) whose
first layer, on a probe batch (more than two samples; the layer listing feeds two), appends
the batch size to ``$FAULT_LOG``; from the ``$FAULT_GATE_AFTER``-th such batch on (counted
in the log, so across processes) it creates ``$FAULT_STARTED`` and waits until
``$FAULT_RELEASE`` exists (at most ``$FAULT_WAIT`` seconds, default 120). Without those
variables it is a plain MLP. A test waits for the marker file, never for a fixed time.

``python -m fault_models ARGS`` (with ``tests/`` on ``PYTHONPATH``) runs
``neurocorr_core.cli.main(ARGS)`` with the numpy test provider added to the plugins, in a
fresh interpreter, as a user runs ``neurocorr ARGS``: :func:`run` to the end, :func:`start`
in the background. ``fault_models:crashing_mlp`` kills its process on a probe batch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bad_input import Run
from numpy_models import NumpyNet, mlp

TESTS = Path(__file__).resolve().parent


def _gate(x: np.ndarray) -> np.ndarray:
    log = os.environ.get("FAULT_LOG")
    if len(x) <= 2 or not log:
        return x
    with open(log, "a") as f:  # one short line per batch: appends of this size do not interleave
        f.write(f"{len(x)}\n")
    seen = len(Path(log).read_text().split())
    if seen < int(os.environ.get("FAULT_GATE_AFTER", "1")):
        return x
    Path(os.environ["FAULT_STARTED"]).touch()
    release = Path(os.environ.get("FAULT_RELEASE", os.devnull + ".never"))
    deadline = time.monotonic() + float(os.environ.get("FAULT_WAIT", "120"))
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return x


def gated_mlp() -> NumpyNet:
    net = mlp(0, [6, 5], n_in=64)
    net.steps.insert(0, ("gate", "Identity", _gate))
    return net


def _crash(x: np.ndarray) -> np.ndarray:
    if len(x) > 2:
        os._exit(70)  # the process dies at once, as on an out-of-memory kill: no exception, no cleanup
    return x


def crashing_mlp() -> NumpyNet:
    """An MLP whose process dies on a probe batch (the layer listing's two samples pass)."""
    net = mlp(0, [6, 5], n_in=64)
    net.steps.insert(0, ("crash", "Identity", _crash))
    return net


def cli_env(gate: Path | None = None, gate_after: int = 1, **extra: str) -> dict[str, str]:
    """The environment of a ``neurocorr`` child process (and of Dask workers it or a test
    starts): ``tests/`` importable; with ``gate`` (a folder), the gate's files in it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
           "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore", **extra}
    if gate is not None:
        env.update(FAULT_LOG=str(gate / "log"), FAULT_STARTED=str(gate / "started"),
                   FAULT_RELEASE=str(gate / "release"), FAULT_GATE_AFTER=str(gate_after), FAULT_WAIT="60")
    return env


def run_cli(argv: list[str], cwd: Path, **env: str) -> Run:
    """``neurocorr ARGV`` in a child process, with :func:`cli_env` and ``env`` (e.g. blocked plugins)."""
    return run(argv, cwd, cli_env(**env))


def command(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "fault_models", *argv]


def start(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``neurocorr ARGV`` running in the background, SIGINT handled as in a terminal (a shell
    that started the tests in the background may have left it ignored)."""
    return subprocess.Popen(command(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 240) -> Run:
    """``neurocorr ARGV`` to the end, as :func:`bad_input.neurocorr` runs it."""
    done = subprocess.run(command(argv), cwd=cwd, env=env or cli_env(), capture_output=True, text=True,
                          timeout=timeout)
    return Run(done.returncode, done.stdout, done.stderr)


def wait_for(path: Path, proc: subprocess.Popen[str] | None = None, limit: float = 120) -> None:
    """Until ``path`` exists; fails at once if ``proc`` ends first (``limit``: only a guard
    against a hang, the test does not depend on it)."""
    deadline = time.monotonic() + limit
    while not path.exists():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"ended (exit {proc.returncode}) before {path.name} appeared:\n{err}\n{out}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {limit} s")
        time.sleep(0.02)


def interrupt_mid_run(argv: list[str], cwd: Path, gate: Path, gate_after: int = 1) -> None:
    """Start ``neurocorr ARGV``, send it SIGINT once its gated model is inside a forward pass,
    and check what a user sees: exit 130 and the one line ``neurocorr: interrupted``."""
    proc = start(argv, cwd, cli_env(gate, gate_after))
    try:
        wait_for(gate / "started", proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert "Traceback" not in err, err
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.strip() == "neurocorr: interrupted", err


def forward_batches(gate: Path) -> list[int]:
    """The probe batch sizes the gated MLP has run (all processes), in order."""
    log = gate / "log"
    return [int(n) for n in log.read_text().split()] if log.exists() else []


def main(argv: list[str]) -> int:
    from neurocorr_core import PluginManager, plugins
    from neurocorr_core.cli import main as cli_main
    from numpy_models import plugin

    manager = PluginManager()
    manager.register(plugin, "numpy-test")
    plugins._default = manager
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
