"""The performance suite in one command: every case, neurocorr beside its reference.

    python benchmarks/run_all.py [--quick] [--only pearson_gemm,cka_grid] [--threads N]
                                 [--json results.jsonl]

Each case runs in its own process (so its peak memory is its own) and prints, per line:
neurocorr's median time, the reference's median time measured in the same run, their ratio,
the peak memory neurocorr added, the target and whether it was met. A summary table follows.
``--quick`` runs smaller sizes and fewer repeats (a few minutes); the full suite is the one
docs/performance.md reports. Nothing here is a unit test: the numbers depend on the machine
and on what else runs on it (compare ratios from the same run, not seconds across runs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CASES = ["pearson_gemm", "corrcoef", "paper_loop", "cka_grid", "spearman_vs_pearson", "hungarian",
         "end_to_end_efficientnet", "extraction_torch", "scaling", "metrics_round2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--only", default=None, help=f"comma-separated cases among {', '.join(CASES)}")
    parser.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads (default: libraries')")
    parser.add_argument("--json", default=None, help="also write every row as JSON lines to this file")
    args = parser.parse_args()
    cases = args.only.split(",") if args.only else CASES
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose among {CASES}")
    here = os.path.dirname(os.path.abspath(__file__))
    out = args.json or os.path.join(tempfile.mkdtemp(prefix="neurocorr-bench-"), "rows.jsonl")
    started = time.perf_counter()
    failed = []
    for case in cases:
        command = [sys.executable, os.path.join(here, f"{case}.py"), "--json", out]
        command += ["--quick"] if args.quick else []
        command += ["--threads", str(args.threads)] if args.threads else []
        t0 = time.perf_counter()
        done = subprocess.run(command, check=False)
        print(f"   ({case}: {time.perf_counter() - t0:.0f} s)", flush=True)
        if done.returncode:
            failed.append(case)
    summary(out)
    print(f"\nsuite: {time.perf_counter() - started:.0f} s{' (quick)' if args.quick else ''}; rows in {out}")
    if failed:
        print(f"cases that failed to run: {failed}")
        sys.exit(1)


def summary(path: str) -> None:
    if not os.path.exists(path):
        return
    with open(path) as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    print("\n| case | size | neurocorr s | reference | reference s | ratio | peak MB | target | met |")
    print("|---|---|---:|---|---:|---:|---:|---|---|")
    for r in rows:
        ref = f"{r['reference_s']:.3f}" if r["reference_s"] else "-"
        ratio = f"{r['ratio']:.3f}" if r["reference_s"] else "-"
        peak = f"{r['peak_mb']:.0f}" if r.get("peak_mb") is not None else "-"
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        print(f"| {r['case'].strip()} | {r['size']} | {r['neurocorr_s']:.3f} | {r['reference']} | {ref} "
              f"| {ratio} | {peak} | {r['target']} | {met} |")


if __name__ == "__main__":
    main()
