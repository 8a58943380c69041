"""What the bad-input and fault matrix checks of every case: the exit status, one error line on
stderr with no traceback, and the file system untouched.

A case runs the real ``neurocorr`` command in a child process (what a user sees: a traceback
is a traceback) and compares a snapshot of the folders it must not change before and after.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: What an untrusted payload creates when it runs: a test asserts it is absent afterwards.
PAYLOAD_MARK = "PWNED"


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def last_line(self) -> str:
        lines = self.err.strip().splitlines()
        return lines[-1] if lines else ""


def listed_commands(help_text: str) -> set[str]:
    """The command names ``neurocorr --help`` lists (indented under COMMAND)."""
    return set(re.findall(r"^    ([a-z][\w-]*)", help_text, re.MULTILINE))


def neurocorr(argv: Sequence[str], cwd: str | os.PathLike[str] | None = None,
              env: Mapping[str, str] | None = None, timeout: float = 240, stdin: str | None = None) -> Run:
    """Run ``neurocorr ARGV`` as a user would, in a fresh interpreter."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore", **(env or {})}
    done = subprocess.run([sys.executable, "-m", "neurocorr_core.cli", *argv], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout, input=stdin)
    return Run(done.returncode, done.stdout, done.stderr)


def assert_user_error(run: Run, *words: str, code: int = 2) -> str:
    """Exit ``code``, no traceback, and stderr ending in one ``neurocorr: error:`` line that
    holds every one of ``words`` (the problem and the fix, case-insensitive). Returns the line."""
    assert "Traceback" not in run.err, f"traceback instead of one line:\n{run.err}"
    assert run.code == code, f"exit {run.code}, expected {code}\nstderr: {run.err}\nstdout: {run.out[-2000:]}"
    line = run.last_line
    assert line.startswith("neurocorr: error: "), f"last stderr line is not an error line: {run.err!r}"
    for word in words:
        assert word.lower() in line.lower(), f"{word!r} missing from the error line: {line!r}"
    return line


def snapshot(*roots: str | os.PathLike[str]) -> dict[str, tuple[str, int, str]]:
    """Every path under ``roots`` (links not followed): its kind, mode and content hash."""
    state: dict[str, tuple[str, int, str]] = {}
    for root in map(Path, roots):
        for path in [root, *_walk(root)]:
            if not os.path.lexists(path):
                continue
            st = path.lstat()
            if path.is_symlink():
                state[str(path)] = ("link", st.st_mode, os.readlink(path))
            elif path.is_dir():
                state[str(path)] = ("dir", st.st_mode, "")
            else:
                state[str(path)] = ("file", st.st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
    return state


def _walk(root: Path) -> Iterable[Path]:
    if root.is_symlink() or not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            yield Path(dirpath) / name


def assert_unchanged(before: Mapping[str, tuple[str, int, str]], after: Mapping[str, tuple[str, int, str]]) -> None:
    created = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    assert not (created or removed or changed), f"created {created}, removed {removed}, changed {changed}"


def no_payload_ran(*roots: str | os.PathLike[str]) -> None:
    """No file named :data:`PAYLOAD_MARK` exists under ``roots``."""
    for root in map(Path, roots):
        found = list(root.rglob(PAYLOAD_MARK)) if root.is_dir() else []
        assert not found, f"untrusted code ran: {found}"


def payload(target: str | os.PathLike[str]) -> str:
    """Python source that, if it ever runs, creates ``target/PWNED``."""
    return f"open({str(Path(target) / PAYLOAD_MARK)!r}, 'w').write('ran')\n"
