"""One full-batch loss-and-gradient pass over D2 (issue 14, item 6): what the L-BFGS and gd
strategies run today (``models._glm.loss_and_grad``: scipy's ``X @ w`` then ``X.T @ dz``,
in the data's float32) against compiled single-read passes (numba: each CSR row read once,
its score, loss and gradient scatter together, float64 weights and gradient), and how far
the float32 products' gradient is from the float64 one.

    python benchmarks/bench_fullbatch_pass.py --rows 2000000 --out benchmarks/results/fullbatch-pass
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
from numba import njit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402


@njit(inline="always")
def _logistic(z, y):
    if z > 0:
        e = math.exp(-z)
        return z + math.log1p(e) - y * z, 1.0 / (1.0 + e) - y
    e = math.exp(z)
    return math.log1p(e) - y * z, e / (1.0 + e) - y


@njit(cache=True)
def fused(indptr, indices, data, y, w, b, gw):
    """Separate float64 ``w`` and ``gw``: two random accesses per stored value."""
    loss = gb = 0.0
    for r in range(indptr.shape[0] - 1):
        z = b
        for k in range(indptr[r], indptr[r + 1]):
            z += data[k] * w[indices[k]]
        lv, g = _logistic(z, y[r])
        loss += lv
        gb += g
        for k in range(indptr[r], indptr[r + 1]):
            gw[indices[k]] += g * data[k]
    return loss, gb


@njit(cache=True)
def fused_interleaved(indptr, indices, data, y, wg, b):
    """``wg[:, 0]`` the weights, ``wg[:, 1]`` the gradient: one cache line per stored value."""
    loss = gb = 0.0
    for r in range(indptr.shape[0] - 1):
        z = b
        for k in range(indptr[r], indptr[r + 1]):
            z += data[k] * wg[indices[k], 0]
        lv, g = _logistic(z, y[r])
        loss += lv
        gb += g
        for k in range(indptr[r], indptr[r + 1]):
            wg[indices[k], 1] += g * data[k]
    return loss, gb


def scipy_pass(X, y, w, b):
    from shardlearn.models import logistic

    return logistic.loss_and_grad({"w": w, "b": np.array(b)}, X, y, None)


def timed(fn, reps):
    fn()  # compile or load, untimed
    best = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t)
    return float(np.median(best)), best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/fullbatch-pass")
    args = ap.parse_args(argv)
    from shardlearn.data.synthetic import make_d2

    X, y = make_d2(args.rows)
    X, y = X.tocsr(), np.asarray(y, dtype=np.float64)
    w = np.random.default_rng(0).normal(0, 0.01, X.shape[1])
    b = 0.1
    gw = np.zeros_like(w)
    wg = np.zeros((w.size, 2))
    wg[:, 0] = w
    rows = []
    for name, fn in [("scipy X @ w, X.T @ dz (float32 products; what lbfgs runs)", lambda: scipy_pass(X, y, w, b)),
                     ("numba fused, float64 w and gradient apart", lambda: fused(X.indptr, X.indices, X.data, y, w, b,
                                                                                 gw)),
                     ("numba fused, w and gradient interleaved", lambda: fused_interleaved(X.indptr, X.indices,
                                                                                           X.data, y, wg, b))]:
        med, all_s = timed(fn, args.reps)
        rows.append({"pass": name, "median_s": med, "seconds": all_s})
    loss, grads = scipy_pass(X, y, w, b)
    z = X.astype(np.float64) @ w + b
    exact = X.T.astype(np.float64) @ ((1.0 / (1.0 + np.exp(-z)) - y) / X.shape[0])
    err = float(np.linalg.norm(grads["w"] - exact) / np.linalg.norm(exact))
    machine = facts()
    lines = [f"# One full-batch logistic loss-and-gradient pass over D2's first {args.rows:,} rows "
             f"({X.nnz:,} stored values, {X.data.dtype})", "", f"Machine: {machine}", "",
             f"Median of {args.reps} passes after an untimed one.", "",
             "| pass | median s | all s |", "|---|---|---|"]
    lines += [f"| {r['pass']} | {r['median_s']:.3f} | {', '.join(f'{s:.2f}' for s in r['seconds'])} |" for r in rows]
    lines += ["", f"Relative error (2-norm) of the float32 products' gradient against float64: {err:.2e}"]
    rows.append({"float32_gradient_relative_error": err})
    os.makedirs(args.out, exist_ok=True)
    save(args.out, "pass", rows, machine, lines)


if __name__ == "__main__":
    main()
