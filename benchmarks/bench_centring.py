"""Dense features far from 0: the training objective over the optimum's, F / F*, at the
defaults (``max_iter`` and the stopping rule as they are) under every stochastic strategy
(the per-example kernel's centred steps, ``kernels/sgd.py``'s ``shift``; README, "Features
far from zero").

The table: 6,000 rows of 8 dense columns of scales 0.01 to 1,000, one of them 50 +- 1, a
logistic target (noise 0.5) and a linear one (3 z + noise + 7); options: the defaults
(alpha 1e-4), elastic net (alpha 1e-3, l1_ratio 0.5), sample weights U(0.2, 3), no
intercept. F*: the same estimator's L-BFGS fit (tol 1e-10). ``--seeds N``: each cell the
worst of ``random_state`` 0..N-1 (the asynchronous strategies' races move their results from
run to run: the tail is what a user meets).

    python benchmarks/bench_centring.py --out benchmarks/results/centring
    python benchmarks/bench_centring.py --strategies "hogwild x2,hogwild x3" --seeds 8 --out benchmarks/results/centring-hogwild
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402

SCALES = np.array([1.0, 10.0, 100.0, 0.01, 1.0, 1.0, 1000.0, 1.0])
STRATEGIES = {"sgd x1": dict(solver="sgd", workers=1), "bsp x2": dict(strategy="bsp", workers=2),
              "local_sgd x2": dict(strategy="local_sgd", workers=2), "ssp x2": dict(strategy="ssp", workers=2),
              "asp x2": dict(strategy="asp", workers=2), "hogwild x2": dict(strategy="hogwild", workers=2),
              "hogwild x3": dict(strategy="hogwild", workers=3),
              "bsp x2 server": dict(strategy="bsp", workers=2, servers=1)}
OPTIONS = {"defaults": {}, "elastic net": dict(alpha=1e-3, l1_ratio=0.5), "sample weights": {"weighted": True},
           "no intercept": dict(fit_intercept=False)}


def table(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8)) * SCALES
    X[:, 5] += 50.0
    z = X @ (rng.normal(size=8) / SCALES)
    z -= np.median(z)
    return X, (z + 0.5 * rng.normal(size=n) > 0).astype(int), 3.0 * z + rng.normal(size=n) + 7.0


def main(argv=None):
    from shardlearn import LinearRegression, LogisticRegression

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for centring.jsonl and centring.md")
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated columns (default: all)")
    p.add_argument("--seeds", type=int, default=1, help="each cell: the worst of random_state 0..N-1 (default 1)")
    args = p.parse_args(argv)
    columns = args.strategies.split(",")
    os.makedirs(args.out, exist_ok=True)
    warnings.simplefilter("ignore")
    X, yb, yr = table()
    sw = np.random.default_rng(3).uniform(0.2, 3.0, size=yb.size)
    rows = []
    for model, estimator, y in (("logistic", LogisticRegression, yb), ("linear", LinearRegression, yr)):
        for option, kw in OPTIONS.items():
            kw = dict(kw)
            w = sw if kw.pop("weighted", False) else None
            if estimator is LinearRegression:
                kw.setdefault("alpha", 1e-4)
            best = estimator(tol=1e-10, max_iter=2000, **kw).fit(X, y, sample_weight=w).objective(X, y, sample_weight=w)
            row = {"model": model, "options": option, "fstar": best}
            for label in columns:
                ratios = [estimator(random_state=seed, **kw, **STRATEGIES[label]).fit(X, y, sample_weight=w)
                          .objective(X, y, sample_weight=w) / best for seed in range(args.seeds)]
                row[label], row[f"{label} seeds"] = max(ratios), ratios
            rows.append(row)
    machine = facts()
    worst = f" (the worst of random_state 0..{args.seeds - 1})" if args.seeds > 1 else ""
    lines = ["# Dense features far from 0: F / F* at the defaults" + worst, "", f"Machine: {machine}", "",
             "| model | options | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    lines += [f"| {r['model']} | {r['options']} | " + " | ".join(f"{r[c]:.4f}" for c in columns) + " |" for r in rows]
    save(args.out, "centring", rows, machine, lines)


if __name__ == "__main__":
    main()
