"""Regression's labels at any scale: held-out MSE over the optimum's after ``max_iter=2`` of
``LinearRegression(solver="sgd")`` (the normalized rule, the linear schedule from 3), 4 seeds,
at label scales ``c`` of the labels' RMS times 0.05 ... 1 (the default: 0.25,
``runtime/label_scale.py``), and without a scale (the rule as it was: rate 3 in the weights'
units). The optimum: ``LinearRegression`` (L-BFGS, tol 1e-10) at the same alpha (1e-4).

Sets: school's exam scores (``mtl_school``, pooled, the seeded 75/25 split of
``bench_multitask.py``); a linear target on a9a's one-hot rows (weights N(0, 10^2), noise 5,
offset 50; first 75% of the file to train); a synthetic dense target (10 columns of
log-normal scales, noise 0.5) times 1e-3, 1, 1e3, 1e6 and offset by 1e4.

    python benchmarks/bench_labels.py --out benchmarks/results/labels
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np
from sklearn.datasets import load_svmlight_file

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.bench_multitask import school  # noqa: E402
from benchmarks.machine import facts  # noqa: E402
from shardlearn import LinearRegression  # noqa: E402
from shardlearn.runtime.config import ANNEALED_NORMALIZED_RATE  # noqa: E402
from shardlearn.runtime.label_scale import CURVATURE  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
FACTORS = [0.05, 0.1, 0.25, 0.5, 1.0]
SEEDS = [0, 1, 2, 3]


def sets(draw: int = 0):
    X, y, _, train = school()
    yield "school", X[train], y[train], X[~train], y[~train]
    rng = np.random.default_rng(draw)
    Xa, _ = load_svmlight_file(os.path.join(DATA, "a9a", "a9a"), n_features=123)
    Xa = Xa.tocsr()
    ya = Xa @ (10 * rng.normal(size=123)) + 5 * rng.normal(size=Xa.shape[0]) + 50
    n = int(0.75 * Xa.shape[0])
    yield "a9a target", Xa[:n], ya[:n], Xa[n:], ya[n:]
    X = rng.normal(size=(20000, 10)) * rng.lognormal(0, 2, 10)
    y = X @ (rng.normal(size=10) / X.std(axis=0)) + 0.5 * rng.normal(size=20000)
    for s in (1e-3, 1.0, 1e3, 1e6):
        yield f"synthetic x {s:g}", X[:15000], y[:15000] * s, X[15000:], y[15000:] * s
    yield "synthetic + 1e4", X[:15000], y[:15000] + 1e4, X[15000:], y[15000:] + 1e4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--sets", default=None, help="comma-separated names from the table (default: all)")
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    ap.add_argument("--draw", type=int, default=0, help="the seed of the generated targets (a9a's weights, synthetic)")
    args = ap.parse_args()
    seeds = [int(v) for v in args.seeds.split(",")]
    wanted = None if args.sets is None else set(args.sets.split(","))
    os.makedirs(args.out, exist_ok=True)
    warnings.simplefilter("ignore")  # the unscaled rule's overshoot warnings: the table says it
    rows = []
    head = ["data", "L*"] + [f"x {k:g}" + (" (default)" if k == CURVATURE else "") for k in FACTORS] + ["no scale"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, X, y, Xt, yt in sets(args.draw):
        if wanted is not None and name not in wanted:
            continue
        best = float(np.mean((LinearRegression(alpha=1e-4, tol=1e-10, max_iter=1000).fit(X, y).predict(Xt) - yt) ** 2))
        rms = float(np.sqrt(np.mean(y * y)))
        cells = []
        # a rate given is per unit of the default scale (RMS x CURVATURE): these rates step at RMS x k, or at 1
        rates = [ANNEALED_NORMALIZED_RATE * k / CURVATURE for k in FACTORS] + \
                [ANNEALED_NORMALIZED_RATE / (CURVATURE * rms)]
        for label, rate in zip(head[2:], rates):
            ratios = [float(np.mean((LinearRegression(alpha=1e-4, solver="sgd", max_iter=2, random_state=s,
                                                      learning_rate=rate).fit(X, y).predict(Xt) - yt) ** 2)) / best
                      for s in seeds]
            rows.append({"data": name, "scale": label, "L*": best, "ratios": ratios})
            cells.append(f"{min(ratios):.4g}-{max(ratios):.4g}")
        lines.append(f"| {name} | {best:.4g} | " + " | ".join(cells) + " |")
    lines += ["", f"Held-out MSE over L* after 2 epochs, seeds {seeds}, targets drawn at {args.draw}; "
              "`python benchmarks/bench_labels.py`."]
    save(args.out, "labels", rows, facts(), lines)


if __name__ == "__main__":
    main()
