"""Defaults, untuned: held-out log-loss over L* after ``max_iter=2`` for every stochastic
configuration, on the real binary datasets of ``../shared/data`` (issue 14).

``LogisticRegression(max_iter=2, random_state=0, **strategy)`` with every other setting
at its default (alpha 1e-4, the default optimizer and rate); L* is the held-out log-loss
of the L-BFGS optimum at the same alpha. a9a and mushrooms use their own test files, w8a
a seeded 75/25 split. Also one-process sgd after 10 epochs, for the datasets that need
more than 2.

    python benchmarks/bench_defaults.py --out benchmarks/results/defaults-sweep
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.machine import facts  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
FILES = {"a9a": ("a9a/a9a", "a9a/a9a.t"), "w8a": ("w8a/w8a", None),
         "mushrooms": ("mushrooms/agaricus_train.txt", "mushrooms/agaricus_test.txt")}
STRATEGIES = {"sgd, 1 process": dict(solver="sgd"), "local_sgd x2": dict(strategy="local_sgd", workers=2),
              "hogwild x2": dict(strategy="hogwild", workers=2), "bsp x2": dict(strategy="bsp", workers=2),
              "ssp x2": dict(strategy="ssp", workers=2), "asp x2": dict(strategy="asp", workers=2)}


def load(name):
    from sklearn.datasets import load_svmlight_file

    train, test = FILES[name]
    X, y = load_svmlight_file(os.path.join(DATA, train))
    y = (y > 0).astype(int)
    if test is not None:
        Xt, yt = load_svmlight_file(os.path.join(DATA, test), n_features=X.shape[1])
        return X, y, Xt, (yt > 0).astype(int)
    idx = np.random.default_rng(0).permutation(X.shape[0])
    cut = int(0.75 * idx.size)
    return X[idx[:cut]], y[idx[:cut]], X[idx[cut:]], y[idx[cut:]]


def main(argv=None):
    from sklearn.metrics import log_loss

    from shardlearn import LogisticRegression

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for defaults.jsonl and defaults.md")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    warnings.simplefilter("ignore", RuntimeWarning)
    rows = []
    for name in FILES:
        X, y, Xt, yt = load(name)
        best = log_loss(yt, LogisticRegression(tol=1e-10).fit(X, y).predict_proba(Xt))
        row = {"data": name, "lstar": best}
        for label, kw in STRATEGIES.items():
            est = LogisticRegression(max_iter=2, random_state=0, **kw).fit(X, y)
            row[label] = log_loss(yt, est.predict_proba(Xt)) / best
        ten = LogisticRegression(solver="sgd", max_iter=10, tol=None, random_state=0).fit(X, y)
        row["sgd, 1 process, 10 epochs"] = log_loss(yt, ten.predict_proba(Xt)) / best
        rows.append(row)
        print(json.dumps(row), flush=True)
    machine = facts()
    with open(os.path.join(args.out, "defaults.jsonl"), "w") as f:
        f.writelines(json.dumps(dict(r, machine=machine)) + "\n" for r in rows)
    cols = list(STRATEGIES) + ["sgd, 1 process, 10 epochs"]
    lines = ["# Defaults, untuned: held-out log-loss / L* after max_iter=2", "", f"Machine: {json.dumps(machine)}", "",
             "| data | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    lines += [f"| {r['data']} (L* {r['lstar']:.4f}) | " + " | ".join(f"{r[c]:.4f}" for c in cols) + " |" for r in rows]
    with open(os.path.join(args.out, "defaults.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
