"""Reaching a Dask scheduler without hanging or a traceback: the address checked before anything
is contacted, a handshake that gives up after a timeout, a Client that is let go when it cannot
work, and Dask's own log messages held back (what they report reaches the user as one
:class:`~neurocorr_core.NeurocorrError`).

``distributed`` is imported inside the functions that need it, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from neurocorr_core import NeurocorrError

#: Seconds to wait for a Dask scheduler (connecting, or starting a LocalCluster); the
#: environment variable overrides it.
CONNECT_TIMEOUT = 10.0
TIMEOUT_ENV = "NEUROCORR_DASK_TIMEOUT"
#: The protocols a Dask scheduler address may name (``inproc`` only works inside one process).
SCHEDULER_PROTOCOLS = ("tcp", "tls", "ws", "wss", "ucx")


def check_scheduler_address(address: object) -> str:
    """``address`` as a Dask scheduler address ``[PROTOCOL://]HOST:PORT`` (nothing is contacted)."""
    hint = ("write PROTOCOL://HOST:PORT, e.g. tcp://127.0.0.1:8786 (the address 'dask scheduler' "
            "prints as 'Scheduler at:'; not its dashboard's http:// address)")
    if not isinstance(address, str) or not address.strip():
        raise NeurocorrError(f"--scheduler {address!r} is not a Dask scheduler address; {hint}")
    scheme, sep, rest = address.strip().partition("://")
    if not sep:
        scheme, rest = "tcp", address.strip()
    if scheme not in SCHEDULER_PROTOCOLS:
        raise NeurocorrError(f"--scheduler {address!r}: {scheme!r} is not a Dask protocol (one of "
                             f"{', '.join(SCHEDULER_PROTOCOLS)}); {hint}")
    host, colon, port = rest.rpartition(":")
    if not colon or not host.strip("[]") or "/" in rest or not port.isdigit() or not 0 < int(port) < 65536:
        raise NeurocorrError(f"--scheduler {address!r} has no valid host and port; {hint}")
    return address.strip()


def connect(client_cls: Any, address: str, timeout: float) -> Any:
    """A Client of the scheduler at ``address``, or a NeurocorrError within about ``timeout``
    seconds (Dask's own connect waits for ever on a server that accepts and stays silent)."""
    def refuse(why: str) -> NeurocorrError:
        return NeurocorrError(
            f"cannot reach the Dask scheduler at {address!r} ({why}). "
            "Start one ('dask scheduler --host 127.0.0.1', then 'dask worker ADDRESS'), check the "
            "address, or leave out --scheduler to start a local cluster")

    why = handshake_fails(address, timeout)
    if why:
        raise refuse(why)
    client = client_cls.__new__(client_cls)  # held before __init__ connects, to clean up after it
    try:
        client.__init__(address, timeout=timeout, set_as_default=False)
        return client
    except Exception as exc:  # whatever a Dask server that is not a scheduler (a worker) makes Dask raise
        abandon(client)
        raise refuse(f"it answers, but did not accept this client within {timeout:g} s: is it a worker's "
                     f"address? {type(exc).__name__}: {_first_line(exc)}") from None


def handshake_fails(address: str, timeout: float) -> str | None:
    """Why nothing at ``address`` answers Dask's handshake within ``timeout`` seconds (a refused
    connection at once), or None. Runs on its own event loop in a thread, so it works where a
    loop is already running (a notebook)."""
    import asyncio
    import socket
    import threading

    scheme, _, rest = address.partition("://") if "://" in address else ("tcp", "", address)
    host, _, port = rest.rpartition(":")
    if scheme in ("tcp", "tls", "ws", "wss"):
        try:  # a refused or unknown address fails here at once, not after Dask's retries
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
        except OSError as exc:
            return f"{exc.strerror or exc}"

    async def handshake() -> None:
        from distributed.comm import connect

        comm = await asyncio.wait_for(connect(address, timeout=timeout), timeout)
        await comm.close()

    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            asyncio.run(handshake())
            outcome.append(None)
        except (OSError, TimeoutError, ValueError) as exc:
            detail = f": {type(exc).__name__}: {_first_line(exc)}" if str(exc) else ""
            outcome.append(f"no answer to Dask's handshake within {timeout:g} s{detail}")
        except Exception as exc:  # whatever a server that is not Dask makes Dask raise
            outcome.append(f"not a Dask scheduler: {type(exc).__name__}: {_first_line(exc)}")

    thread = threading.Thread(target=attempt, daemon=True, name="neurocorr-dask-handshake")
    thread.start()
    thread.join(timeout + 5)
    return outcome[0] if outcome else f"no answer to Dask's handshake within {timeout:g} s"


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else "no answer"


def abandon(client: Any) -> None:
    """Make a Client that could not start, or lost its scheduler, forget it: mark it closed (so
    that its ``__del__`` does not wait 2 x timeout at exit for a close that cannot succeed)
    and stop its event loop thread."""
    if getattr(client, "status", "closed") == "closed":
        return
    client.status = "closed"
    with contextlib.suppress(Exception):
        client._loop_runner.stop()


@contextlib.contextmanager
def quiet_dask() -> Iterator[None]:
    """Hold back Dask's log messages (errors included): what they report reaches the caller as
    a NeurocorrError, and a command's error is one line."""
    names = ["distributed", *(n for n in list(logging.root.manager.loggerDict) if n.startswith("distributed."))]
    loggers = [logging.getLogger(name) for name in names]  # Dask's config sets levels per logger
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def connect_timeout(timeout: object = None) -> float:
    """Seconds to wait for a scheduler: ``timeout`` (the executor's option), else
    ``$NEUROCORR_DASK_TIMEOUT``, else :data:`CONNECT_TIMEOUT`."""
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise NeurocorrError(f"timeout must be a positive number of seconds, got {timeout!r}; give e.g. "
                                 f"--executor-option timeout={CONNECT_TIMEOUT:g}, or leave it out")
        return float(timeout)
    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return CONNECT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise NeurocorrError(f"{TIMEOUT_ENV}={text!r} must be a positive number of seconds; set it to e.g. "
                             f"{CONNECT_TIMEOUT:g}, or unset it")
    return value

