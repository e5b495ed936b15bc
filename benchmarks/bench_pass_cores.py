"""One full-batch loss-and-gradient pass, per core: one process on every row with BLAS on 1
thread and on every core, against 2 workers on half the rows each (1 thread each, as
``runtime.launch`` starts them) (issue 14, item 6: "2 workers >= 1.8x one process per pass").

On a 2-core machine one process's dense pass (D1) already runs BLAS on both cores, so "2
workers against one process" there compares 2 cores with 2 cores; the per-core ratio (one
thread against 2 workers of one thread each) is the scaling a second machine's core gives.
D2's sparse products are scipy's, one thread whatever BLAS may use. Beside them, what only
reading the values costs (a sum over them, one process against 2 workers): the pass's memory
traffic alone. After an untimed pass, one process's median of ``--passes`` passes, the
workers' mean over as many (timed between barriers, ``worker_jobs.time_passes``); the
settings alternate ``--reps`` times and each takes its median over them.

    python benchmarks/bench_pass_cores.py --rows 2000000 --out benchmarks/results/pass-cores
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402


def one_process(X, y, passes: int, threads: int | None, read: bool = False) -> float:
    """Median seconds of a pass over every row in this process, BLAS limited to ``threads``
    (``read``: a sum of the values instead)."""
    from threadpoolctl import threadpool_limits

    from shardlearn.models import logistic

    params = logistic.init(X.shape[1])
    values = X.data if sp.issparse(X) else X
    step = (lambda: values.sum()) if read else (lambda: logistic.loss_and_grad(params, X, y))
    with threadpool_limits(threads):
        step()
        times = []
        for _ in range(passes):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def two_workers(X, y, passes: int, model: str = "logistic") -> tuple:
    """Mean seconds a pass over a half (``worker_jobs.time_passes``): until both are done, and the
    faster worker's own."""
    from shardlearn.runtime import group
    from shardlearn.runtime.spill import Spill

    with Spill(X, y) as spec:
        res = group.get(2).run("worker_jobs:time_passes", model=model, spill=spec, passes=passes)
    return max(r["seconds_per_pass"] for r in res), min(r["own_seconds_per_pass"] for r in res)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for pass.jsonl and pass.md")
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--data", default="D1,D2")
    p.add_argument("--passes", type=int, default=5)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # worker_jobs for the group
    from shardlearn.data import synthetic

    os.makedirs(args.out, exist_ok=True)
    machine, rows = facts(), []
    for name in args.data.split(","):
        X, y = (synthetic.make_d1 if name == "D1" else synthetic.make_d2)(args.rows)
        y = np.asarray(y, dtype=np.float64)
        got = {"1 process, 1 thread": [], "1 process, every core": [], "2 workers, 1 thread each": [], "faster worker": [],
               "read, 1 process": [], "read, 2 workers": []}
        for _ in range(args.reps):
            got["1 process, 1 thread"].append(one_process(X, y, args.passes, 1))
            got["1 process, every core"].append(one_process(X, y, args.passes, None))
            slow, fast = two_workers(X, y, args.passes)
            got["2 workers, 1 thread each"].append(slow)
            got["faster worker"].append(fast)
            got["read, 1 process"].append(one_process(X, y, args.passes, 1, read=True))
            got["read, 2 workers"].append(two_workers(X, y, args.passes, model="read")[0])
        med = {k: float(np.median(v)) for k, v in got.items()}
        rows.append({"data": name, "rows": int(X.shape[0]), "seconds": got, "median": med,
                     "per_core": med["1 process, 1 thread"] / med["2 workers, 1 thread each"],
                     "per_process": med["1 process, every core"] / med["2 workers, 1 thread each"],
                     "read": med["read, 1 process"] / med["read, 2 workers"]})
        print(rows[-1], flush=True)
    lines = [f"# One logistic loss-and-gradient pass: 1 process against 2 workers ({args.rows:,} rows)", "",
             f"Machine: {machine}", "",
             f"Median over {args.reps} alternating repetitions of one process's median of {args.passes} passes and the "
             f"workers' mean over {args.passes} (seconds).", "",
             "2 workers: until both are done (a pass ends with the slower); the faster worker's own passes beside it.", "",
             "| data | 1 process, 1 thread | 1 process, every core | 2 workers, 1 thread each | faster worker | per core (x) | per process (x) | reading only, 1 process / 2 workers (x) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["median"]
        lines.append(f"| {r['data']} | {m['1 process, 1 thread']:.3f} | {m['1 process, every core']:.3f} | "
                     f"{m['2 workers, 1 thread each']:.3f} | {m['faster worker']:.3f} | {r['per_core']:.2f} | {r['per_process']:.2f} | "
                     f"{m['read, 1 process']:.3f} / {m['read, 2 workers']:.3f} ({r['read']:.2f}) |")
    save(args.out, "pass", rows, machine, lines)


if __name__ == "__main__":
    main()
