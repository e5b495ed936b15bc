"""Each collective's seconds on every rank of a fit across namespaced hosts, under thread
settings given as environments: the by-hand timing behind ``docs/gotchas.md``'s spinning
OpenBLAS threads. a9a's lbfgs on ``--hosts`` hosts (``benchmarks/hosts.py``, unshaped), 40
iterations, once per setting; from rank 0's metrics: the fit's seconds, and per step (one
allreduce a step after the first) every rank's communication seconds and the step's
``transfer_seconds``. ``default`` leaves the hosts' thread count to ``hosts.py``'s share of the
cores; ``2`` gives every host 2 OpenBLAS threads (what torchrun's one process a node gets on a
2-core machine). Needs root.

    python benchmarks/call_times.py --out benchmarks/results/links/call-times.md
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.hosts import Hosts  # noqa: E402
from benchmarks.machine import facts  # noqa: E402

SETTINGS = {"default": {}, "2": {"OMP_NUM_THREADS": "2"},
            "2, OMP_WAIT_POLICY=PASSIVE": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
            "2, NUMBA_NUM_THREADS=1": {"OMP_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "1"},
            "2, OPENBLAS_NUM_THREADS=1": {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "1"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    args = ap.parse_args()
    path = os.path.join(args.data, "a9a", "a9a")
    lines = ["# Collective seconds by rank under thread settings (benchmarks/call_times.py)", "",
             f"a9a lbfgs, {args.iters} iterations, {args.hosts} namespaced hosts (unshaped), one fit a setting. "
             "Per-call ms: the median and largest over the steps after the first (one 1 KB allreduce each) of "
             "every rank's seconds in it, and of the step's transfer (its shortest over the ranks).", "",
             f"Machine: {facts().get('cpu')}, {facts().get('cores')} cores.", "",
             "| threads a host | fit s | rank call ms, median | largest | transfer ms, median | largest |",
             "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as d, Hosts(args.hosts) as hosts:
        for port, (name, extra) in enumerate(SETTINGS.items(), start=29950):
            metrics = os.path.join(d, f"m{port}.jsonl")
            codes, logs = hosts.torchrun(["-m", "shardlearn", "train", path, "--alpha", "1e-4", "--random-state", "0",
                                          "--strategy", "lbfgs", "--tol", "0", "--max-iter", str(args.iters),
                                          "--metrics", metrics, "--out", os.path.join(d, f"o{port}")],
                                         port=port, timeout=600, env=dict(os.environ, **extra))
            if codes != [0] * args.hosts:
                raise SystemExit(f"{name}: {codes}\n{logs[0][-2000:]}")
            steps = [json.loads(line) for line in open(metrics)]
            calls = sorted(c * 1e3 for s in steps[1:] for c in s["comm_seconds_by_rank"])
            moved = sorted(s["transfer_seconds"] * 1e3 for s in steps[1:])
            row = (f"| {name} | {steps[-1]['time']:.2f} | {calls[len(calls) // 2]:.1f} | {calls[-1]:.1f} | "
                   f"{moved[len(moved) // 2]:.1f} | {moved[-1]:.1f} |")
            print(row, flush=True)
            lines.append(row)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
