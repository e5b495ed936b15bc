"""Defaults, untuned: held-out log-loss over L* after ``max_iter=2`` for every stochastic
configuration, on the real binary datasets of ``../shared/data`` (issue 14).

``LogisticRegression(max_iter=2, random_state=0, **strategy)`` with every other setting
at its default (alpha 1e-4, the default optimizer and rate); L* is the held-out log-loss
of the L-BFGS optimum at the same alpha. a9a, mushrooms and kddcup99 use their own test
files (kddcup99 hashed as the README's CLI example does: columns 1-3 categorical, 2^12
buckets, "normal." positive), w8a and elec2 (asked for by name) a seeded 75/25 split, D1 and D2 (``BENCHMARKS.md``) their
generators' train and test splits at ``--rows`` rows. Also one-process sgd after 10
epochs, for the datasets that need more than 2. One worker of every strategy is the
one-process pass (``tests/test_ps_online.py``), so "sgd, 1 process" is also the
``workers=1`` column.

    python benchmarks/bench_defaults.py --out benchmarks/results/defaults-sweep
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.machine import facts  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
FILES = {"a9a": ("a9a/a9a", "a9a/a9a.t"), "w8a": ("w8a/w8a", None),
         "mushrooms": ("mushrooms/agaricus_train.txt", "mushrooms/agaricus_test.txt")}
KDD = ("kddcup99/kddcup.data_10_percent.gz", "kddcup99/corrected.gz")
SYNTHETIC = ("D1", "D2")
# "sgd, 1 process" says workers=1: workers=None would pick 2 for D1's 800 MB
STRATEGIES = {"sgd, 1 process": dict(solver="sgd", workers=1), "local_sgd x2": dict(strategy="local_sgd", workers=2),
              "hogwild x2": dict(strategy="hogwild", workers=2), "bsp x2": dict(strategy="bsp", workers=2),
              "ssp x2": dict(strategy="ssp", workers=2), "asp x2": dict(strategy="asp", workers=2),
              "bsp x2, 1 server": dict(strategy="bsp", workers=2, servers=1)}


def load(name, rows=500_000):
    from sklearn.datasets import load_svmlight_file

    if name in SYNTHETIC:
        from shardlearn.data import synthetic

        make = synthetic.make_d1 if name == "D1" else synthetic.make_d2
        X, y = make(rows)
        Xt, yt = make(max(rows // 10, 1000), split="test")
        return X, y, Xt, yt
    if name == "elec2":  # 6 dense features in [0, 1]; a seeded 75/25 split (its time order ignored)
        import pandas as pd

        frame = pd.read_csv(os.path.join(DATA, "elec2", "elec.csv"))
        y = frame.pop("class").astype(int).to_numpy()
        return _split(frame.to_numpy(float), y)
    if name == "kddcup99":
        from shardlearn.data.readers import read

        parts = [read(os.path.join(DATA, f), label=41, header=False, categorical=[1, 2, 3], encoding="hash",
                      hash_bits=12) for f in KDD]
        return [a for X, y in parts for a in (X, (np.asarray(y) == "normal.").astype(int))]
    train, test = FILES[name]
    X, y = load_svmlight_file(os.path.join(DATA, train))
    y = (y > 0).astype(int)
    if test is not None:
        Xt, yt = load_svmlight_file(os.path.join(DATA, test), n_features=X.shape[1])
        return X, y, Xt, (yt > 0).astype(int)
    return _split(X, y)


def _split(X, y):
    """A seeded 75/25 split, for the datasets without a test file."""
    idx = np.random.default_rng(0).permutation(X.shape[0])
    cut = int(0.75 * idx.size)
    return X[idx[:cut]], y[idx[:cut]], X[idx[cut:]], y[idx[cut:]]


def _warm_up(estimator) -> None:
    """Load (or, the first time on a machine, compile) the kernels for dense and CSR rows
    before anything is timed: that cost is the first call's, not a fit's (README)."""
    import scipy.sparse as sp

    X = np.random.default_rng(0).normal(size=(64, 3))
    y = (X[:, 0] > 0).astype(int)
    for data in (X, sp.csr_matrix(X)):
        estimator(solver="sgd", max_iter=1).fit(data, y)


def main(argv=None):
    from sklearn.metrics import log_loss

    from shardlearn import LogisticRegression

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for defaults.jsonl and defaults.md")
    p.add_argument("--rows", type=int, default=500_000, help="training rows of D1 and D2 (BENCHMARKS.md: 2,000,000)")
    p.add_argument("--data", default=",".join(list(FILES) + ["kddcup99"] + list(SYNTHETIC)),
                   help="comma-separated datasets")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="every estimator's learning_rate (default: the estimator's own)")
    p.add_argument("--sync-every", type=int, default=None,
                   help="batches per exchange of the per-example bsp, ssp and asp (default: theirs)")
    args = p.parse_args(argv)
    strategies = {k: dict(v, sync_every=args.sync_every) if args.sync_every and v.get("strategy") in ("bsp", "ssp", "asp")
                  else v for k, v in STRATEGIES.items()}
    rate = {} if args.learning_rate is None else {"learning_rate": args.learning_rate}
    strategies = {k: dict(v, **rate) for k, v in strategies.items()}
    os.makedirs(args.out, exist_ok=True)
    warnings.simplefilter("ignore", RuntimeWarning)
    rows = []
    _warm_up(LogisticRegression)
    for name in args.data.split(","):
        X, y, Xt, yt = load(name, args.rows)
        best = log_loss(yt, LogisticRegression(tol=1e-10).fit(X, y).predict_proba(Xt))
        row = {"data": name, "rows": int(X.shape[0]), "lstar": best, "seconds": {}}
        for label, kw in strategies.items():
            t = time.perf_counter()
            est = LogisticRegression(max_iter=2, random_state=0, **kw).fit(X, y)
            row["seconds"][label] = round(time.perf_counter() - t, 2)  # fit, with worker start-up and data transfer
            row[label] = log_loss(yt, est.predict_proba(Xt)) / best
        ten = LogisticRegression(solver="sgd", workers=1, max_iter=10, tol=None, random_state=0, **rate).fit(X, y)
        row["sgd, 1 process, 10 epochs"] = log_loss(yt, ten.predict_proba(Xt)) / best
        rows.append(row)
        print(json.dumps(row), flush=True)
    machine = facts()
    cols = list(STRATEGIES) + ["sgd, 1 process, 10 epochs"]
    title = "# Defaults, untuned: held-out log-loss / L* after max_iter=2"
    title += f" (bsp, ssp, asp: sync_every={args.sync_every})" if args.sync_every else ""
    title += f" (learning_rate={args.learning_rate})" if args.learning_rate is not None else ""
    lines = [title, "", f"Machine: {json.dumps(machine)}", "",
             "| data | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    lines += [f"| {r['data']} ({r['rows']:,} rows, L* {r['lstar']:.4f}) | " + " | ".join(f"{r[c]:.4f}" for c in cols)
              + " |" for r in rows]
    lines += ["", "Fit seconds (worker start-up and data transfer included; 2 cores, shared):", "",
              "| data | " + " | ".join(STRATEGIES) + " |", "|---|" + "---|" * len(STRATEGIES)]
    lines += [f"| {r['data']} | " + " | ".join(f"{r['seconds'][c]:.1f}" for c in STRATEGIES) + " |" for r in rows]
    save(args.out, "defaults", rows, machine, lines)


def save(folder: str, stem: str, rows: list, machine: dict, lines: list) -> None:
    """``stem.jsonl`` (a row per dataset, with the machine) and ``stem.md`` (``lines``), printed too."""
    with open(os.path.join(folder, f"{stem}.jsonl"), "w") as f:
        f.writelines(json.dumps(dict(r, machine=machine)) + "\n" for r in rows)
    with open(os.path.join(folder, f"{stem}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
