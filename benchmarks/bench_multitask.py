"""Multi-task learning on school (issue 17): explained variance on a seeded 75/25 split within
each of the 139 tasks, features standardised on the training part, every penalty chosen by
5-fold cross-validation on the training part, all models fitted in the same run:

- pooled: one ridge model (scikit-learn ``Ridge``);
- separate: one ridge model per task (one alpha for all, chosen by CV);
- pooled + task intercepts: ``Ridge`` on the features and one-hot task columns scaled by
  100 (their penalty 1e4 times smaller: intercepts all but free), and the same model as
  ``MultiTaskLinearRegression`` with ``task_alpha=1e7`` (the limit; its Jacobi-scaled solver
  no longer crawls there);
- joint: ``MultiTaskLinearRegression`` (``alpha``, ``task_alpha`` chosen by CV on a grid), and
  the elastic net at those penalties with ``l1_ratio`` chosen by CV from {0.1, 0.5, 0.9}.

Then the time of one joint fit with 1 and 2 workers (tasks partitioned by hash; the group
started before timing), on school and on a synthetic set of 2,000 tasks x 100 rows x 50
features (medians of 3).

    python benchmarks/bench_multitask.py --out benchmarks/results/multitask
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

import numpy as np
import scipy.io as sio
from sklearn.linear_model import Ridge
from sklearn.metrics import explained_variance_score
from sklearn.model_selection import KFold

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402
from shardlearn import MultiTaskLinearRegression  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mtl_school",
                    "PyMTL_school_b.mat")
GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]


def school(seed: int = 0):
    m = sio.loadmat(DATA)
    X, y = m["x"].T.astype(np.float64), m["y"].ravel().astype(np.float64)
    starts = m["task_indexes"].ravel() - 1
    tasks = np.zeros(y.size, dtype=np.int64)
    tasks[starts[1:]] = 1
    tasks = np.cumsum(tasks)
    X = X[:, X.std(axis=0) > 0]  # the bias column goes: every model has its intercept
    rng = np.random.default_rng(seed)
    train = np.zeros(y.size, dtype=bool)
    for t in np.unique(tasks):
        rows = rng.permutation(np.flatnonzero(tasks == t))
        train[rows[: int(round(0.75 * rows.size))]] = True
    mu, sd = X[train].mean(axis=0), X[train].std(axis=0)
    return (X - mu) / sd, y, tasks, train


def _cv(fit_predict, X, y, t, options, seed=0):
    """The option with the best mean explained variance over 5 folds of the training rows."""
    folds = list(KFold(5, shuffle=True, random_state=seed).split(X))
    scores = [np.mean([explained_variance_score(y[va], fit_predict(o, X[tr], y[tr], t[tr], X[va], t[va]))
                       for tr, va in folds]) for o in options]
    return options[int(np.argmax(scores))]


def pooled(o, X, y, t, Xv, tv):
    return Ridge(alpha=o).fit(X, y).predict(Xv)


def separate(o, X, y, t, Xv, tv):
    out = np.full(Xv.shape[0], y.mean())
    for k in np.unique(tv):
        r, rv = t == k, tv == k
        if r.sum() > 1:
            out[rv] = Ridge(alpha=o).fit(X[r], y[r]).predict(Xv[rv])
    return out


def _with_tasks(X, t, n_tasks):
    return np.hstack([X, 100.0 * np.eye(n_tasks)[t]])


def intercepts(o, X, y, t, Xv, tv):
    T = int(max(t.max(), tv.max())) + 1
    return Ridge(alpha=o).fit(_with_tasks(X, t, T), y).predict(_with_tasks(Xv, tv, T))


def joint(o, X, y, t, Xv, tv):
    return MultiTaskLinearRegression(alpha=o[0], task_alpha=o[1]).fit(X, y, tasks=t).predict(Xv, tasks=tv)


def intercepts_joint(o, X, y, t, Xv, tv):
    return MultiTaskLinearRegression(alpha=o, task_alpha=1e7).fit(X, y, tasks=t).predict(Xv, tasks=tv)


def joint_l1(o, X, y, t, Xv, tv):
    return MultiTaskLinearRegression(alpha=o[0], task_alpha=o[1], l1_ratio=o[2]).fit(X, y, tasks=t).predict(
        Xv, tasks=tv)


def synthetic(n_tasks=2000, rows=100, d=50, seed=0):
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(n_tasks), rows)
    X = rng.normal(size=(t.size, d))
    W = rng.normal(size=d) + 0.3 * rng.normal(size=(n_tasks, d))
    return X, np.einsum("ij,ij->i", X, W[t]) + rng.normal(size=n_tasks)[t] + rng.normal(size=t.size), t


def timings(sets, best) -> list[dict]:
    """Median seconds of one joint fit with 1 and 2 workers (the 2-worker group warmed up first)."""
    out = []
    for name, (X, y, t) in sets.items():
        for workers in (1, 2):
            est = MultiTaskLinearRegression(alpha=best[0], task_alpha=best[1], workers=workers)
            est.fit(X[:2000], y[:2000], tasks=t[:2000])  # starts the group; numba/imports paid
            secs = []
            for _ in range(3):
                t0 = time.perf_counter()
                est.fit(X, y, tasks=t)
                secs.append(time.perf_counter() - t0)
            rep = est.fit_result_.reports
            out.append({"data": name, "workers": workers, "rows": int(X.shape[0]), "tasks": int(np.unique(t).size),
                        "fit_s": float(np.median(secs)), "n_iter": est.n_iter_,
                        "bytes_sent_per_worker": int(max(r["bytes_sent"] for r in rep)),
                        "model_bytes": int(8 * (est.coef_tasks_.size + est.coef_shared_.size + est.intercept_.size))})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    X, y, t, train = school()
    Xtr, ytr, ttr, Xte, yte, tte = X[train], y[train], t[train], X[~train], y[~train], t[~train]
    rows = []
    ridge_grid = [0.1, 1.0, 10.0, 100.0, 1000.0]
    cases = [("pooled (Ridge)", pooled, ridge_grid), ("separate (Ridge per task)", separate, ridge_grid),
             ("pooled + task intercepts (Ridge)", intercepts, ridge_grid),
             ("pooled + task intercepts (joint model, task_alpha=1e7)", intercepts_joint, GRID + [10.0]),
             ("joint w0 + v_t", joint, list(itertools.product(GRID, GRID + [10.0]))),
             ("joint w0 + v_t, elastic net", joint_l1, None)]
    for name, fit_predict, options in cases:
        if options is None:  # the elastic net at the L2 model's penalties
            options = [(*rows[-1]["chosen"], r) for r in (0.1, 0.5, 0.9)]
        t0 = time.perf_counter()
        best = _cv(fit_predict, Xtr, ytr, ttr, options)
        t1 = time.perf_counter()
        pred = fit_predict(best, Xtr, ytr, ttr, Xte, tte)
        t2 = time.perf_counter()
        rows.append({"model": name, "chosen": best, "explained_variance": explained_variance_score(yte, pred),
                     "cv_s": t1 - t0, "fit_s": t2 - t1})
    machine = facts()
    lines = ["# Multi-task learning on school (benchmarks/bench_multitask.py)", "",
             f"139 tasks, 15,362 rows, 27 standardised features; a seeded 75/25 split within each task; "
             f"penalties by 5-fold CV on the training part. Machine: {machine.get('cpu', '?')}.", "",
             "| model | chosen penalty | test explained variance | CV s | final fit s |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['chosen']} | {r['explained_variance']:.4f} | {r['cv_s']:.1f} | {r['fit_s']:.2f} |"
              for r in rows]
    best = next(r["chosen"] for r in rows if r["model"] == "joint w0 + v_t")
    times = timings({"school": (X[train], y[train], t[train]), "synthetic 2,000 x 100 x 50": synthetic()}, best)
    lines += ["", f"One joint fit at the chosen penalties {best} (median of 3; bytes: the most any worker sent in "
              "the fit; model: the whole model's size):", "",
              "| data | rows | tasks | workers | fit s | iterations | bytes sent | model bytes |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['data']} | {r['rows']:,} | {r['tasks']:,} | {r['workers']} | {r['fit_s']:.2f} | {r['n_iter']} | "
              f"{r['bytes_sent_per_worker']:,} | {r['model_bytes']:,} |" for r in times]
    save(args.out, "multitask", rows + times, machine, lines)


if __name__ == "__main__":
    main()
