"""Core benchmark (one process): D1 of ../shared/BENCHMARKS.md at 200,000 and
2,000,000 rows. Time to held-out log-loss <= 1.01 x L* (and 1.001 x L*) for
shardlearn lbfgs vs scikit-learn lbfgs and newton-cholesky, in the same run.

Every system gets the same budget sweep (max_iter over a geometric grid); each
(system, budget) fit is repeated ``--reps`` times, systems alternating, and the
median fit time is reported. L* comes from an independent float64 scipy L-BFGS
on standardised features to gradient norm < 1e-8.

    python benchmarks/bench_core_d1.py --rows 200000 2000000 --out benchmarks/results
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression as SkLogistic

sys.path.insert(0, os.path.dirname(__file__))
from machine import facts  # noqa: E402
from timing import timed_fit  # noqa: E402

import shardlearn  # noqa: E402
from shardlearn.data.synthetic import make_d1  # noqa: E402

ALPHA = 1e-6
TEST_ROWS = 200_000
BUDGETS = {
    "shardlearn lbfgs": [3, 5, 8, 12, 18, 27, 40, 60, 90, 135, 200],
    "scikit-learn lbfgs": [25, 50, 100, 150, 200, 300, 450, 700],
    "scikit-learn newton-cholesky": [1, 2, 3, 4, 5, 6, 8, 10],
}


def reference_optimum(X, y, alpha):
    """float64 L-BFGS on standardised features; returns (w, b) in the original space."""
    X64 = X.astype(np.float64)
    m, s = X64.mean(0), X64.std(0)
    Xs = (X64 - m) / s
    del X64
    n = len(y)

    def f(x):
        v, c = x[:-1], x[-1]
        z = Xs @ v + c
        p = 1.0 / (1.0 + np.exp(-z))
        r = (p - y) / n
        w = v / s
        loss = np.mean(np.logaddexp(0, z) - y * z) + 0.5 * alpha * w @ w
        return loss, np.concatenate([Xs.T @ r + alpha * w / s, [r.sum()]])

    res = minimize(f, np.zeros(X.shape[1] + 1), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-8, "ftol": 1e-16, "maxiter": 10000, "maxcor": 20})
    w = res.x[:-1] / s
    return w, res.x[-1] - m @ w, float(np.max(np.abs(res.jac)))


def heldout_logloss(w, b, Xt, yt):
    z = Xt.astype(np.float64) @ w + b
    return float(np.mean(np.logaddexp(0, z) - yt * z))


def make(system, budget, n):
    if system == "shardlearn lbfgs":
        return shardlearn.LogisticRegression(alpha=ALPHA, max_iter=budget, tol=1e-10)
    solver = "lbfgs" if system.endswith("lbfgs") else "newton-cholesky"
    return SkLogistic(C=1.0 / (ALPHA * n), solver=solver, max_iter=budget, tol=1e-10)


def run(rows, reps, out_rows):
    t0 = time.perf_counter()
    X, y = make_d1(rows)
    Xt, yt = make_d1(TEST_ROWS, split="test")
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    w, b, gnorm = reference_optimum(X, y, ALPHA)
    lstar = heldout_logloss(w, b, Xt, yt)
    print(f"rows={rows}: L*={lstar:.6f} (reference gradient max-norm {gnorm:.1e}, {time.perf_counter() - t0:.0f} s)",
          flush=True)
    records = []
    reached = {s: False for s in BUDGETS}
    for budget_idx in range(max(len(v) for v in BUDGETS.values())):
        for rep in range(reps):
            for system, budgets in BUDGETS.items():
                if budget_idx >= len(budgets) or reached[system] == "both":
                    continue
                est = make(system, budgets[budget_idx], rows)
                secs, ll = timed_fit(est, X, y, Xt, yt)
                rec = {"rows": rows, "system": system, "max_iter": budgets[budget_idx], "rep": rep,
                       "fit_seconds": secs, "load_seconds": load_s, "heldout_logloss": ll, "ratio_to_lstar": ll / lstar,
                       "n_iter": int(np.max(est.n_iter_)), "lstar": lstar}
                records.append(rec)
                out_rows.write(json.dumps(rec) + "\n")
                out_rows.flush()
        for system, budgets in BUDGETS.items():
            recs = [r for r in records if r["system"] == system and r["max_iter"] == budgets[min(budget_idx, len(budgets) - 1)]]
            if recs and np.median([r["ratio_to_lstar"] for r in recs]) <= 1.001:
                reached[system] = "both"
    return lstar, records


def summarize(lstar, records, rows):
    lines = []
    for target in (1.01, 1.001):
        best = {}
        for system in BUDGETS:
            by_budget = {}
            for r in records:
                if r["system"] == system:
                    by_budget.setdefault(r["max_iter"], []).append(r)
            for budget in sorted(by_budget):
                rs = by_budget[budget]
                if np.median([r["ratio_to_lstar"] for r in rs]) <= target:
                    best[system] = (float(np.median([r["fit_seconds"] for r in rs])), budget, int(rs[0]["n_iter"]))
                    break
        fastest_other = min((v[0] for k, v in best.items() if not k.startswith("shardlearn")), default=None)
        for system in BUDGETS:
            if system in best:
                secs, budget, nit = best[system]
                ratio = f"{secs / fastest_other:.2f}" if fastest_other else "-"
                lines.append(f"| {rows:,} | {target} x L* | {system} | {secs:.2f} | {budget} ({nit}) | {ratio} |")
            else:
                lines.append(f"| {rows:,} | {target} x L* | {system} | not reached | - | - |")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[200_000, 2_000_000])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    table = ["| rows | target | system | fit seconds (median) | max_iter (iterations) | ratio to best scikit-learn |",
             "|---|---|---|---|---|---|"]
    lstars = {}
    with open(os.path.join(args.out, "core_d1.jsonl"), "w") as f:
        f.write(json.dumps({"machine": facts(), "alpha": ALPHA, "test_rows": TEST_ROWS}) + "\n")
        for rows in args.rows:
            lstar, records = run(rows, args.reps, f)
            lstars[rows] = lstar
            table += summarize(lstar, records, rows)
    m = facts()
    md = ["# Core benchmark: D1, one process, time to held-out log-loss <= 1.01 x L*", "",
          f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, numpy {m['numpy']}, "
          f"scipy {m['scipy']}, scikit-learn {m['scikit-learn']}. alpha = {ALPHA:g}, test rows {TEST_ROWS:,}.", "",
          "L*: " + ", ".join(f"{r:,} rows: {v:.5f}" for r, v in lstars.items()), "",
          f"Medians over {args.reps} repetitions per budget, systems alternating; data generation (load) is not "
          "counted. Produced by `python benchmarks/bench_core_d1.py`; every measurement is in `core_d1.jsonl`. "
          "The machine is shared: single fits vary by up to 2x between repetitions (see the jsonl); the ratios "
          "come from one run with the systems alternating.", ""]
    with open(os.path.join(args.out, "core_d1.md"), "w") as f:
        f.write("\n".join(md + table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
