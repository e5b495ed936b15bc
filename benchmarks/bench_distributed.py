"""Distributed runtime benchmark: D1 and D2 of ../shared/BENCHMARKS.md at full
size, shardlearn on 2 local workers (and 1 process) next to scikit-learn in the
same run. Time to held-out log-loss <= 1.01 x L* counting the whole ``fit`` call;
one-gradient-pass throughput on 1 vs 2 workers; communication share of an
L-BFGS iteration; peak RSS per worker against its shard.

    python benchmarks/bench_distributed.py --rows 2000000 --out benchmarks/results
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression as SkLogistic

sys.path.insert(0, os.path.dirname(__file__))
from machine import facts  # noqa: E402
from timing import timed_fit  # noqa: E402

import shardlearn  # noqa: E402
from shardlearn.data.synthetic import make_d1, make_d2  # noqa: E402
from shardlearn.models import logistic  # noqa: E402
from shardlearn.runtime import group  # noqa: E402
from shardlearn.runtime.spill import Spill  # noqa: E402

ALPHA = 1e-6
TEST_ROWS = 200_000


def reference(X, y, alpha):
    """float64 L-BFGS on standardised columns (only the columns that occur) to gradient max-norm < 1e-8."""
    if sp.issparse(X):
        X = X.tocsc()
        keep = np.flatnonzero(X.getnnz(axis=0))
        X = X[:, keep].tocsr().astype(np.float64)
        m = np.asarray(X.mean(axis=0)).ravel()
        s = np.sqrt(np.maximum(np.asarray(X.multiply(X).mean(axis=0)).ravel() - m * m, 1e-12))
    else:
        keep = np.arange(X.shape[1])
        X = X.astype(np.float64)
        m, s = X.mean(0), X.std(0)
    n = len(y)

    def f(x):
        v, c = x[:-1], x[-1]
        w = v / s
        z = X @ w + (c - m @ w)
        p = 1.0 / (1.0 + np.exp(-z))
        r = (p - y) / n
        gw = X.T @ r - m * r.sum() + alpha * w
        return np.mean(np.logaddexp(0, z) - y * z) + 0.5 * alpha * w @ w, np.concatenate([gw / s, [r.sum()]])

    res = minimize(f, np.zeros(len(keep) + 1), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-8, "ftol": 1e-16, "maxiter": 20000, "maxcor": 20})
    w = res.x[:-1] / s
    return keep, w, res.x[-1] - m @ w, float(np.max(np.abs(res.jac)))


def heldout(keep, w, b, Xt, yt):
    Xk = Xt[:, keep] if sp.issparse(Xt) else Xt.astype(np.float64)
    z = Xk @ w + b
    return float(np.mean(np.logaddexp(0, z) - yt * z))


def systems(name, n):
    C = 1.0 / (ALPHA * n)
    sl = lambda w: (lambda k: shardlearn.LogisticRegression(alpha=ALPHA, max_iter=k, tol=1e-10, workers=w))  # noqa: E731
    if name == "D1":
        return {
            "shardlearn lbfgs, 2 workers": (sl(2), [3, 4, 5, 6, 8, 12], 3),
            "shardlearn lbfgs, 2 workers, X a mapped .npy": (sl(2), [3, 4, 5, 6, 8, 12], 3),
            "shardlearn lbfgs, 1 process": (sl(1), [3, 4, 5, 6, 8, 12], 3),
            "scikit-learn newton-cholesky": (lambda k: SkLogistic(C=C, solver="newton-cholesky", max_iter=k, tol=1e-10),
                                             [2, 3, 4, 5], 3),
            "scikit-learn lbfgs": (lambda k: SkLogistic(C=C, max_iter=k, tol=1e-10), [100, 150, 200], 1),
        }
    return {
        "shardlearn lbfgs, 2 workers": (sl(2), [3, 4, 5, 10, 15, 20, 30, 45, 70], 3),
        "shardlearn lbfgs, 1 process": (sl(1), [3, 4, 5, 10, 15, 20, 30, 45, 70], 3),
        "scikit-learn saga": (lambda k: SkLogistic(C=C, solver="saga", max_iter=k, tol=1e-10), [1, 2, 3, 5, 8], 1),
    }


def measure(name, X, y, Xt, yt, lstar, out, mapped=None):
    """``mapped``: the same X as a memory-mapped .npy file, for the systems whose name says so."""
    records, done = [], set()
    table = systems(name, X.shape[0])
    depth = max(len(b) for _, b, _ in table.values())
    for i in range(depth):
        for rep in range(3):
            for sysname, (make, budgets, reps) in table.items():
                if i >= len(budgets) or rep >= reps or sysname in done:
                    continue
                est = make(budgets[i])
                secs, ll = timed_fit(est, mapped if "mapped" in sysname else X, y, Xt, yt)
                rec = {"dataset": name, "system": sysname, "max_iter": budgets[i], "rep": rep, "fit_seconds": secs,
                       "heldout_logloss": ll, "ratio_to_lstar": ll / lstar, "lstar": lstar}
                if "2 workers" in sysname:
                    steps, reports = est.fit_result_.steps, est.fit_result_.reports
                    rec["comm_share"] = sum(s["comm_seconds"] for s in steps) / max(sum(s["step_seconds"] for s in steps), 1e-12)
                    rec["peak_rss_mb"] = [r["peak_rss_mb"] for r in reports]
                    rec["bytes_sent"] = [r["bytes_sent"] for r in reports]
                records.append(rec)
                out.write(json.dumps(rec) + "\n")
                out.flush()
                print(f"{name} {sysname} max_iter={budgets[i]} rep={rep}: {secs:.2f} s, {ll / lstar:.5f} x L*", flush=True)
        for sysname, (make, budgets, reps) in table.items():
            rs = [r for r in records if r["system"] == sysname and r["max_iter"] == budgets[min(i, len(budgets) - 1)]]
            if rs and np.median([r["ratio_to_lstar"] for r in rs]) <= 1.001:
                done.add(sysname)
    return records


def throughput(X, y):
    """Seconds per loss-and-gradient pass: one process on all rows, 2 workers on half each."""
    params = logistic.init(X.shape[1])
    logistic.loss_and_grad(params, X, y)
    t = time.perf_counter()
    for _ in range(5):
        logistic.loss_and_grad(params, X, y)
    one = (time.perf_counter() - t) / 5
    with Spill(X, y) as spec:
        res = group.get(2).run("worker_jobs:time_passes", model="logistic", spill=spec, passes=5)
    two = max(r["seconds_per_pass"] for r in res)
    return one, two


def summary(name, records, lstar, thr, shard_mb):
    lines = []
    for target in (1.01, 1.001):
        best = {}
        for sysname in dict.fromkeys(r["system"] for r in records):
            by = {}
            for r in records:
                if r["system"] == sysname:
                    by.setdefault(r["max_iter"], []).append(r)
            for k in sorted(by):
                if np.median([r["ratio_to_lstar"] for r in by[k]]) <= target:
                    best[sysname] = (float(np.median([r["fit_seconds"] for r in by[k]])), k)
                    break
            else:
                best[sysname] = None
        others = [v[0] for k, v in best.items() if v and not k.startswith("shardlearn")]
        ref = min(others) if others else None
        for sysname, v in best.items():
            if v is None:
                lines.append(f"| {name} | {target} x L* | {sysname} | not reached | - | - |")
            else:
                ratio = f"{v[0] / ref:.2f}" if ref else "-"
                lines.append(f"| {name} | {target} x L* | {sysname} | {v[0]:.2f} | {v[1]} | {ratio} |")
    two = [r for r in records if r["system"] == "shardlearn lbfgs, 2 workers"]  # the in-memory caller
    share = np.median([r["comm_share"] for r in two]) if two else float("nan")
    rss = max(max(r["peak_rss_mb"]) for r in two) if two else float("nan")
    extra = (f"{name}: one gradient pass {thr[0] * 1e3:.0f} ms in one process, {thr[1] * 1e3:.0f} ms on 2 workers "
             f"(x{thr[0] / thr[1]:.2f}); communication share of the 2-worker L-BFGS iterations {share:.1%} (median over "
             f"fits); peak RSS per worker {rss:.0f} MB for a shard of {shard_mb:.0f} MB "
             f"(target <= {1.5 * shard_mb + 400:.0f} MB).")
    return lines, extra


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--datasets", nargs="+", default=["D1", "D2"])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    table = ["| data | target | system | fit seconds (median, whole fit call) | max_iter | ratio to best competitor |",
             "|---|---|---|---|---|---|"]
    notes, lstars = [], {}
    stem = "distributed-" + "-".join(args.datasets)
    with open(os.path.join(args.out, stem + ".jsonl"), "w") as out:
        out.write(json.dumps({"machine": facts(), "alpha": ALPHA, "rows": args.rows, "test_rows": TEST_ROWS}) + "\n")
        for name in args.datasets:
            make = make_d1 if name == "D1" else make_d2
            t = time.perf_counter()
            X, y = make(args.rows)
            Xt, yt = make(TEST_ROWS, split="test")
            print(f"{name}: generated in {time.perf_counter() - t:.1f} s", flush=True)
            t = time.perf_counter()
            cache = os.path.join(os.path.dirname(__file__), "cache", "lstar.json")
            known = json.load(open(cache)) if os.path.exists(cache) else {}
            key = f"{name}-{args.rows}-{TEST_ROWS}-{ALPHA:g}"
            if key in known:
                lstar = lstars[name] = known[key]
                print(f"{name}: L* = {lstar:.5f} (cached in {cache})", flush=True)
            else:
                keep, w, b, g = reference(X, y, ALPHA)
                lstar = lstars[name] = heldout(keep, w, b, Xt, yt)
                print(f"{name}: L* = {lstar:.5f} (gradient max-norm {g:.1e}, {time.perf_counter() - t:.0f} s)", flush=True)
                os.makedirs(os.path.dirname(cache), exist_ok=True)
                json.dump(dict(known, **{key: lstar}), open(cache, "w"), indent=1)
            group.shutdown()  # a fresh group per dataset: its peak RSS is this dataset's
            mapped = None
            if not sp.issparse(X):
                path = os.path.join(os.path.dirname(cache), f"{name}-{args.rows}-X.npy")
                np.save(path, X)
                mapped = np.load(path, mmap_mode="r")
            records = measure(name, X, y, Xt, yt, lstar, out, mapped)
            thr = throughput(X, y)
            shard_mb = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes if sp.issparse(X) else X.nbytes) / 2 / 2**20
            lines, extra = summary(name, records, lstar, thr, shard_mb)
            table += lines
            notes.append(extra)
            out.write(json.dumps({"dataset": name, "throughput_1_process_s": thr[0], "throughput_2_workers_s": thr[1],
                                  "note": extra}) + "\n")
            del X, Xt
    m = facts()
    md = ["# Distributed runtime: D1 and D2, 2 local workers, time to held-out log-loss <= 1.01 x L*", "",
          f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, numpy {m['numpy']}, "
          f"scipy {m['scipy']}, scikit-learn {m['scikit-learn']}. alpha = {ALPHA:g}; {args.rows:,} train and "
          f"{TEST_ROWS:,} test rows.", "",
          "L*: " + ", ".join(f"{k} {v:.5f}" for k, v in lstars.items()), "",
          "Fit seconds count the whole `fit` call (for 2 workers: writing the data to /dev/shm, the workers' shard "
          "copies, the iterations, the answer), with the worker group already started. Medians over 3 repetitions, "
          "systems alternating (scikit-learn lbfgs and saga: 1 repetition per budget). Produced by "
          f"`python benchmarks/bench_distributed.py --datasets {' '.join(args.datasets)}`; every fit is a line of "
          f"`{stem}.jsonl`.", "", *table, "",
          *[f"- {n}" for n in notes]]
    with open(os.path.join(args.out, stem + ".md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
