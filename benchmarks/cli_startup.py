"""How long ``neurocorr --help`` takes, beside a bare ``python -c pass``.

    python benchmarks/cli_startup.py [--repeats 9]

``--help`` loads every installed plugin's module to list its commands, so a plugin that imports
its framework at import time shows here at once (torch alone takes seconds). The two commands
run interleaved (bare, help, bare, help, ...) so load from elsewhere hits both; the medians are
printed side by side with the target (under 0.5 s), then the slowest imports of one run
(``python -X importtime``) and any framework among them.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

TARGET_S = 0.5
FRAMEWORKS = ("torch", "tensorflow", "keras", "jax", "flax", "onnx", "onnxruntime", "dask", "distributed")


def help_command() -> list[str]:
    """The installed console script, else the module (the same code, one import fewer)."""
    script = shutil.which("neurocorr")
    return [script, "--help"] if script else [sys.executable, "-m", "neurocorr_core.cli", "--help"]


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def imports() -> list[tuple[float, str, bool]]:
    """(cumulative seconds, module, top level?) of every import of one ``--help``."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "neurocorr_core.cli", "--help"],
                          capture_output=True, text=True, check=True)
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2]  # one space before a top-level import, more for the imports it makes
            rows.append((int(parts[1]) / 1e6, name.strip(), not name.startswith("  ")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9, help="runs of each command (default 9)")
    args = parser.parse_args()
    bare, helped = [sys.executable, "-c", "pass"], help_command()
    wall(helped)  # the first run fills the file cache: not counted
    times: dict[str, list[float]] = {"bare": [], "help": []}
    for _ in range(args.repeats):
        times["bare"].append(wall(bare))
        times["help"].append(wall(helped))
    bare_s, help_s = (statistics.median(times[k]) for k in ("bare", "help"))
    print(f"{'command':<28} {'median s':>9} {'min s':>7} {'max s':>7}   ({args.repeats} runs each)")
    for label, key in (("python -c pass", "bare"), ("neurocorr --help", "help")):
        print(f"{label:<28} {statistics.median(times[key]):>9.3f} {min(times[key]):>7.3f} {max(times[key]):>7.3f}")
    verdict = "met" if help_s < TARGET_S else "NOT met"
    print(f"neurocorr --help: {help_s:.3f} s, {help_s - bare_s:.3f} s above a bare interpreter; "
          f"target < {TARGET_S} s: {verdict}")
    rows = imports()
    print("\nslowest top-level imports of one --help (cumulative s):")
    for seconds, name, _ in sorted((r for r in rows if r[2]), reverse=True)[:8]:
        print(f"  {seconds:7.3f}  {name}")
    heavy = sorted({name.split(".")[0] for _, name, _ in rows} & set(FRAMEWORKS))
    print(f"frameworks imported: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
