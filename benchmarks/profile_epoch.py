"""Where one process's per-example epoch goes: one pass of the compiled kernel over D2's
rows (logistic, the normalized rule at its default rate), with and without a shuffled
order and an L2 penalty, so the two costs beyond the rows themselves are measured apart:
random row access (a shuffled order reads CSR rows out of place) and the lazy penalty's
catch-up (a ``pow`` per touched coordinate). Also one default ``LogisticRegression``
epoch (``solver="sgd"``, one worker: shuffling and penalty as the estimator runs them,
plus its data checks, order and finalize).

    python benchmarks/profile_epoch.py --rows 2000000 --out benchmarks/results/profile-epoch
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402


def kernel_pass(X, y, shuffle: bool, alpha: float) -> dict:
    from shardlearn.kernels import sgd as kernel

    order = np.random.default_rng(0).permutation(X.shape[0]) if shuffle else np.arange(X.shape[0])
    opts = dict(loss="logistic", rule="normalized", lr=0.5, l2=alpha)
    kernel.run(kernel.new_state(X.shape[1], "normalized"), X[:2], y[:2], None, np.arange(2), **opts)  # load
    state = kernel.new_state(X.shape[1], "normalized")
    t = time.perf_counter()
    out = kernel.run(state, X, y, None, order, **opts)
    secs = time.perf_counter() - t
    t = time.perf_counter()
    kernel.finalize(state, rule="normalized", lr=0.5, l2=alpha)
    return {"pass": f"kernel, {'shuffled' if shuffle else 'in file order'}, alpha {alpha:g}", "seconds": secs,
            "finalize_s": time.perf_counter() - t, "progressive_logloss": float(out[0] / out[1])}


def estimator_epoch(X, y, alpha: float) -> dict:
    from shardlearn import LogisticRegression

    LogisticRegression(solver="sgd", max_iter=1, workers=1).fit(X[:64], y[:64])  # load the kernel
    t = time.perf_counter()
    LogisticRegression(solver="sgd", max_iter=1, workers=1, alpha=alpha, random_state=0).fit(X, y)
    return {"pass": f"LogisticRegression(solver='sgd', max_iter=1, alpha={alpha:g}).fit", "seconds":
            time.perf_counter() - t, "finalize_s": float("nan"), "progressive_logloss": float("nan")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--alpha", type=float, default=1e-6)
    ap.add_argument("--out", default="benchmarks/results/profile-epoch")
    args = ap.parse_args(argv)
    from shardlearn.data.synthetic import make_d2

    X, y = make_d2(args.rows)
    rows = [kernel_pass(X, y, shuffle, alpha) for shuffle in (False, True) for alpha in (0.0, args.alpha)]
    rows.append(estimator_epoch(X, y, args.alpha))
    machine = facts()
    lines = [f"# One process's per-example epoch over D2's first {args.rows:,} rows ({X.nnz:,} stored values, "
             f"{X.data.dtype})", "", f"Machine: {machine}", "",
             "| pass | seconds | examples/s | finalize s | progressive log-loss |", "|---|---|---|---|---|"]
    lines += [f"| {r['pass']} | {r['seconds']:.2f} | {args.rows / r['seconds']:,.0f} | {r['finalize_s']:.3f} | "
              f"{r['progressive_logloss']:.5f} |" for r in rows]
    os.makedirs(args.out, exist_ok=True)
    save(args.out, "profile", rows, machine, lines)


if __name__ == "__main__":
    main()
