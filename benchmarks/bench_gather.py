"""The parameter-server step's batch gather (``kernels.columns.batch``) against the floor of
its memory reads: seconds per million of D2's rows, visited in a shuffled order in steps of
``--step`` rows (an ``asp`` step's rows at D2's 2M rows), for

- ``read``: each row's stored values and columns read, nothing written (the random reads alone);
- ``read + lookups``: also each column's slot looked up in a d-wide scratch (what renumbering needs);
- ``copy``: the rows' values and columns copied out, in order;
- ``batch``: the compiled gather itself (rows renumbered onto their sorted columns, prefetching).

    python benchmarks/bench_gather.py --out benchmarks/results/gather.md

One process, best of 3 passes each; what benchmarks/README says of ``asp``'s gather.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from numba import njit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import report  # noqa: E402
from benchmarks.machine import facts  # noqa: E402


@njit(cache=True)
def _read(indptr, indices, data, rows):
    s, t = 0.0, 0
    for i in range(rows.size):
        for k in range(indptr[rows[i]], indptr[rows[i] + 1]):
            s += data[k]
            t += indices[k]
    return s + t


@njit(cache=True)
def _lookups(indptr, indices, data, rows, pos):
    s, t = 0.0, 0
    for i in range(rows.size):
        for k in range(indptr[rows[i]], indptr[rows[i] + 1]):
            s += data[k]
            t += pos[indices[k]]
    return s + t


@njit(cache=True)
def _copy(indptr, indices, data, rows, out_i, out_d):
    o = 0
    for i in range(rows.size):
        for k in range(indptr[rows[i]], indptr[rows[i] + 1]):
            out_i[o] = indices[k]
            out_d[o] = data[k]
            o += 1
    return o


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--step", type=int, default=7680)
    ap.add_argument("--out")
    args = ap.parse_args()
    from shardlearn.data.synthetic import make_d2
    from shardlearn.kernels import columns

    X, _ = make_d2(args.rows)
    order = np.random.default_rng(0).permutation(X.shape[0])
    pos = np.full(X.shape[1], -1, dtype=np.int32)
    width = int(np.max(np.diff(X.indptr))) * args.step
    out_i, out_d = np.empty(width, dtype=np.int32), np.empty(width, dtype=X.data.dtype)
    ways = {"read": lambda r: _read(X.indptr, X.indices, X.data, r),
            "read + lookups": lambda r: _lookups(X.indptr, X.indices, X.data, r, pos),
            "copy": lambda r: _copy(X.indptr, X.indices, X.data, r, out_i, out_d),
            "batch": lambda r: columns.batch(X, r, pos)}
    got = {}
    for name, f in ways.items():
        f(order[:100])  # compiled before the clock
        best = np.inf
        for _ in range(3):
            t = time.perf_counter()
            for lo in range(0, X.shape[0], args.step):
                f(order[lo : lo + args.step])
            best = min(best, time.perf_counter() - t)
        got[name] = best * 1e6 / X.shape[0]
    m = facts()
    lines = ["# The batch gather against its memory reads (benchmarks/bench_gather.py)", "",
             f"D2's first {args.rows:,} rows ({X.nnz / X.shape[0]:.1f} stored values a row), a shuffled order, "
             f"steps of {args.step:,} rows; seconds per million rows, best of 3. Machine: {m['cpu']}, "
             f"{m['cores']} cores.", "", "| pass | s per 1M rows |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in got.items()]
    report.emit(lines, args.out)


if __name__ == "__main__":
    main()
