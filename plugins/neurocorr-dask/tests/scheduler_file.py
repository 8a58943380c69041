"""Reading the address a ``dask scheduler --scheduler-file FILE`` process publishes."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path


def scheduler_address(info: Path, proc: subprocess.Popen, limit: float = 120) -> str:
    """The address in ``info`` once the scheduler has written it whole: the file appears before
    its content (an empty file read under load was a JSON error), so poll until it parses."""
    deadline = time.monotonic() + limit
    while True:
        try:
            return json.loads(info.read_text())["address"]
        except (OSError, json.JSONDecodeError, KeyError):
            if proc.poll() is not None:
                raise AssertionError(f"the scheduler exited with {proc.returncode} before writing {info}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"the scheduler wrote no address to {info} in {limit:.0f} s") from None
            time.sleep(0.05)
