"""The bad-input and fault matrix of the dask executor's options (docs/scale-out.md): every case is one
``neurocorr: error:`` line saying what is wrong and what to do, exit 2, no traceback, and
nothing created, removed or changed in the folders involved (no output written).

Addresses that do not parse are refused before anything is contacted; a refused port, a
server that never answers Dask's handshake, a worker's address, a scheduler without workers
and a scheduler killed mid-run are real processes and sockets, on 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import bad_input
import fault_models
from neurocorr_core import NeurocorrError, compare
from neurocorr_core.scale_out import get_executor
from neurocorr_dask import DaskExecutor, check_scheduler_address
from scheduler_file import scheduler_address

#: A generous bound for "fails fast" (the timeouts involved are a few seconds): not a benchmark.
FAST = 30


@pytest.fixture
def work(tmp_path: Path) -> dict[str, Path]:
    folders = {name: tmp_path / name for name in ("data", "out", "gate")}
    for folder in folders.values():
        folder.mkdir()
    np.save(folders["data"] / "probe.npy", np.random.default_rng(4).normal(size=(40, 1, 8, 8)).astype(np.float32))
    (folders["out"] / "earlier.json").write_text("{}\n")
    return folders


def compare_argv(work: dict[str, Path], *extra: str) -> list[str]:
    return ["compare", "fault_models:gated_mlp", "grid_models:mlp_b", "--probe", str(work["data"] / "probe.npy"),
            "--quiet", "--json", str(work["out"] / "result.json"), *extra]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_refused(work: dict[str, Path], extra: list[str], words: tuple[str, ...],
                   env: dict[str, str] | None = None) -> str:
    """Run the comparison with ``extra``: one error line holding ``words``, within :data:`FAST`
    seconds, and the data and output folders as they were."""
    before = bad_input.snapshot(work["data"], work["out"])
    start = time.monotonic()
    run = fault_models.run(compare_argv(work, *extra), work["data"], fault_models.cli_env(**(env or {})))
    elapsed = time.monotonic() - start
    line = bad_input.assert_user_error(run, *words)
    assert run.err.strip() == line, f"more than one line on stderr:\n{run.err}"
    assert elapsed < FAST, f"took {elapsed:.0f} s"
    bad_input.assert_unchanged(before, bad_input.snapshot(work["data"], work["out"]))
    return line


ADDRESS_HINT = "tcp://127.0.0.1:8786"
CLI_CASES = [
    # (id, extra arguments, environment, words of the error line)
    ("refused-port", ["--scheduler", "tcp://127.0.0.1:{port}"], {},
     ("cannot reach the Dask scheduler", "connection refused", "dask scheduler --host 127.0.0.1")),
    ("refused-no-protocol", ["--scheduler", "127.0.0.1:{port}"], {}, ("cannot reach", "connection refused")),
    ("no-port", ["--scheduler", "nonsense"], {}, ("'nonsense'", "no valid host and port", ADDRESS_HINT)),
    ("http-dashboard", ["--scheduler", "http://x"], {},
     ("'http' is not a Dask protocol", "dashboard", ADDRESS_HINT)),
    ("dashboard-path", ["--scheduler", "tcp://127.0.0.1:8787/status"], {}, ("no valid host and port", ADDRESS_HINT)),
    ("empty", ["--scheduler", ""], {}, ("'' is not a Dask scheduler address", ADDRESS_HINT)),
    ("port-out-of-range", ["--scheduler", "tcp://127.0.0.1:70000"], {}, ("no valid host and port",)),
    ("local-with-scheduler", ["--executor", "local", "--scheduler", "tcp://127.0.0.1:{port}"], {},
     ("belong to the dask executor", "add --executor dask")),
    ("local-with-workers", ["--executor", "local", "--workers", "2"], {}, ("belong to the dask executor",)),
    ("scheduler-and-workers", ["--scheduler", "tcp://127.0.0.1:{port}", "--workers", "2"], {},
     ("--workers starts a local cluster", "not both")),
    ("workers-0", ["--executor", "dask", "--workers", "0"], {},
     ("workers must be a whole number of at least 1, got 0", "--workers 2")),
    ("workers-negative", ["--executor", "dask", "--workers", "-3"], {}, ("workers must be", "got -3")),
    ("shards-0", ["--executor", "dask", "--shards", "0"], {}, ("shards must be a whole number of at least 1",)),
    ("shards-negative", ["--shards", "-2"], {}, ("shards must be", "got -2")),
    ("more-shards-than-pairs-of-samples", ["--executor", "dask", "--shards", "30"], {},
     ("30 shards of a 40-sample probe", "use at most 20 shards")),
    ("permutations-on-dask", ["--executor", "dask", "--permutations", "9"], {},
     ("do not run on an executor", "drop --executor")),
    ("timeout-not-a-number", ["--scheduler", "tcp://127.0.0.1:{port}"], {"NEUROCORR_DASK_TIMEOUT": "soon"},
     ("NEUROCORR_DASK_TIMEOUT='soon'", "positive number of seconds", "unset it")),
    ("timeout-zero", ["--scheduler", "tcp://127.0.0.1:{port}"], {"NEUROCORR_DASK_TIMEOUT": "0"},
     ("NEUROCORR_DASK_TIMEOUT='0'", "positive number")),
    # the executor's options given as --executor-option KEY=VALUE
    ("unknown-option", ["--executor", "dask", "--executor-option", "colour=red"], {},
     ("executor 'dask' has no option(s) colour", "the options it takes: scheduler, timeout, workers")),
    ("timeout-option-zero", ["--executor", "dask", "--executor-option", "timeout=0"], {},
     ("timeout must be a positive number of seconds, got 0", "--executor-option timeout=10")),
    ("timeout-option-text", ["--scheduler", "tcp://127.0.0.1:{port}", "--executor-option", "timeout=soon"], {},
     ("timeout must be a positive number of seconds, got 'soon'",)),
    ("scheduler-option-garbage", ["--executor", "dask", "--executor-option", "scheduler=nonsense"], {},
     ("'nonsense'", "no valid host and port", ADDRESS_HINT)),
    ("scheduler-option-refused", ["--executor", "dask", "--executor-option", "scheduler=tcp://127.0.0.1:{port}"],
     {}, ("cannot reach the Dask scheduler", "connection refused")),
    ("scheduler-twice-disagreeing", ["--scheduler", "tcp://127.0.0.1:{port}", "--executor-option",
                                     "scheduler=tcp://127.0.0.1:1"], {}, ("disagree", "give it once")),
    ("workers-option-0", ["--executor", "dask", "--executor-option", "workers=0"], {},
     ("workers must be a whole number of at least 1, got 0",)),
    ("local-with-dask-option", ["--executor", "local", "--executor-option", "timeout=5"], {},
     ("executor 'local' has no option(s) timeout", "the options it takes: threads")),
]


@pytest.mark.parametrize("extra, env, words", [pytest.param(*case[1:], id=case[0]) for case in CLI_CASES])
def test_bad_executor_options_are_one_line(work, extra, env, words):
    pytest.importorskip("distributed")
    port = closed_port()
    assert_refused(work, [e.format(port=port) for e in extra], words, env)


def test_an_unknown_executor_in_an_experiment_file(work):
    (work["data"] / "exp.toml").write_text('[models]\na = "fault_models:gated_mlp"\nb = "grid_models:mlp_b"\n\n'
                                           '[compare]\nprobe = "probe.npy"\nexecutor = "spark"\n')
    before = bad_input.snapshot(work["data"], work["out"])
    run = fault_models.run(["run", "exp.toml", "--json", str(work["out"] / "result.json")], work["data"])
    bad_input.assert_user_error(run, "executor", "'spark'", "dask, local")
    bad_input.assert_unchanged(before, bad_input.snapshot(work["data"], work["out"]))


@pytest.mark.parametrize("call, words", [
    pytest.param(lambda: get_executor("spark"), ("no executor named 'spark'", "available: dask, local"), id="name"),
    pytest.param(lambda: check_scheduler_address("tcp://127.0.0.1"), ("no valid host and port",), id="no-port"),
    pytest.param(lambda: check_scheduler_address(8786), ("8786 is not a Dask scheduler address",), id="not-text"),
    pytest.param(lambda: DaskExecutor("inproc://127.0.0.1/1/2"), ("'inproc' is not a Dask protocol",),
                 id="inproc"),
    pytest.param(lambda: compare("grid_models:mlp_a", "grid_models:mlp_b", np.zeros((8, 64), np.float32),
                                 executor="dask", workers=True), ("workers must be a whole number",),
                 id="workers-bool"),
])
def test_bad_executor_arguments_from_python(tmp_path, monkeypatch, call, words):
    pytest.importorskip("distributed")
    monkeypatch.chdir(tmp_path)
    before = bad_input.snapshot(tmp_path)
    with pytest.raises(NeurocorrError) as info:
        call()
    for word in words:
        assert word.lower() in str(info.value).lower(), str(info.value)
    bad_input.assert_unchanged(before, bad_input.snapshot(tmp_path))


@pytest.mark.slow
def test_a_task_that_kills_its_worker(work):
    """A forward pass that kills its worker process (as an out-of-memory kill does): Dask gives up
    on the task (after the first death here) and the command says what to try, in one line."""
    pytest.importorskip("distributed")
    argv = ["compare", "fault_models:crashing_mlp", "grid_models:mlp_b", "--probe", str(work["data"] / "probe.npy"),
            "--quiet", "--json", str(work["out"] / "result.json"), "--executor", "dask", "--workers", "1"]
    before = bad_input.snapshot(work["data"], work["out"])
    run = fault_models.run(argv, work["data"], fault_models.cli_env(DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0"))
    line = bad_input.assert_user_error(run, "worker running one of this run's tasks died (1 time",
                                     "out of memory", "more --shards")
    assert run.err.strip() == line, f"more than one line on stderr:\n{run.err}"
    bad_input.assert_unchanged(before, bad_input.snapshot(work["data"], work["out"]))


# -- real servers on 127.0.0.1 ---------------------------------------------------------------------------
@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word (Dask's own connect would wait
    for its handshake for ever)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def test_a_server_that_never_answers(work):
    pytest.importorskip("distributed")
    with silent_server() as port:
        assert_refused(work, ["--scheduler", f"tcp://127.0.0.1:{port}"],
                       ("cannot reach the Dask scheduler", "no answer to Dask's handshake within 2 s"),
                       {"NEUROCORR_DASK_TIMEOUT": "2"})


class DaskProcesses:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, each in its own session,
    all killed at the end."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder, self.env = folder, env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.dask = str(Path(sys.executable).with_name("dask"))

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - the process writes to it
        proc = subprocess.Popen([self.dask, *args], stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def scheduler(self) -> tuple[str, subprocess.Popen[bytes]]:
        info = self.folder / "scheduler.json"
        proc = self._start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                           "--scheduler-file", str(info))
        return scheduler_address(info, proc), proc

    def worker(self, scheduler: str, port: int | None = None) -> None:
        listen = ["--worker-port", str(port)] if port else []
        self._start("worker", "worker", scheduler, "--host", "127.0.0.1", *listen, "--nworkers", "1",
                    "--nthreads", "1", "--no-dashboard", "--death-timeout", "30")

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


@pytest.fixture
def dask_processes(tmp_path: Path, work) -> Iterator[DaskProcesses]:
    pytest.importorskip("distributed")
    folder = tmp_path / "dask"
    folder.mkdir()
    procs = DaskProcesses(folder, fault_models.cli_env(work["gate"], gate_after=2))
    try:
        yield procs
    finally:
        (work["gate"] / "release").touch()
        procs.close()


def test_a_scheduler_without_workers(work, dask_processes):
    address, _ = dask_processes.scheduler()
    assert_refused(work, ["--scheduler", address], ("has no workers", "none joined within 2 s",
                                                    f"dask worker {address}"), {"NEUROCORR_DASK_TIMEOUT": "2"})


def test_a_workers_address_given_as_the_scheduler(work, dask_processes):
    address, _ = dask_processes.scheduler()
    port = closed_port()
    dask_processes.worker(address, port)
    client = DaskExecutor(address, timeout=30)  # until the worker has joined: its port then answers
    client.close()
    assert_refused(work, ["--scheduler", f"tcp://127.0.0.1:{port}"],
                   ("cannot reach the Dask scheduler", "a worker's address"), {"NEUROCORR_DASK_TIMEOUT": "2"})


@pytest.mark.slow
def test_the_scheduler_killed_mid_run(work, dask_processes):
    """The worker's forward pass is mid-run (its marker file exists) when the scheduler process is
    killed: one line naming what went away and what was finished, exit 2, no output."""
    address, scheduler = dask_processes.scheduler()
    dask_processes.worker(address)
    cache = work["gate"].parent / "cache"
    before = bad_input.snapshot(work["data"], work["out"])
    proc = fault_models.start(compare_argv(work, "--scheduler", address, "--shards", "2", "--cache-dir", str(cache)),
                              work["data"], fault_models.cli_env(NEUROCORR_DASK_TIMEOUT="3"))
    try:
        fault_models.wait_for(work["gate"] / "started", proc)
        os.killpg(scheduler.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    run = bad_input.Run(proc.returncode, out, err)
    line = bad_input.assert_user_error(run, f"the Dask scheduler at {address} went away mid-run",
                                     "scheduler-connection-lost", "start the scheduler again and re-run")
    assert err.strip() == line, f"more than one line on stderr:\n{err}"
    # which shards were finished depends on the worker's order; the line says which, and where they are
    assert ("no probe shard's activations were finished (of 2)" in line
            or (f"of 2 probe shards (samples 0:20) were finished and are in the activation cache {cache}" in line
                and "--shards 2" in line)), line
    bad_input.assert_unchanged(before, bad_input.snapshot(work["data"], work["out"]))
    assert not list(cache.rglob("*.tmp"))
