"""``shardlearn demo``, ``make-data`` and ``bench``: the main job on synthetic data, data to
try the other commands on, and the benchmark harness of a source checkout."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from shardlearn.core.errors import ConfigError


def demo(args) -> None:
    from shardlearn.demo import run

    run(rows=args.rows, test_rows=args.test_rows, seed=args.seed, workers=args.workers)


def make_data(args) -> None:
    """Rows of D1 (``BENCHMARKS.md``: dense, badly scaled features, a known logistic model)."""
    from shardlearn.data.synthetic import make_d1

    if args.rows < 1 or args.features < 1:
        raise ConfigError(f"--rows and --features must be positive, got {args.rows} and {args.features}")
    X, y = make_d1(args.rows, n_features=args.features, seed=args.seed, split=args.split)
    low = args.out.lower()
    if low.endswith((".libsvm", ".svm", ".svmlight")):
        from sklearn.datasets import dump_svmlight_file

        dump_svmlight_file(X, y, args.out, zero_based=False)
    elif low.endswith(".csv"):
        from shardlearn.data.writers import write_csv

        cols = {f"x{j}": X[:, j] for j in range(X.shape[1])}
        cols["target"] = y.astype(np.int64)
        write_csv(args.out, cols)
    else:
        raise ConfigError(f"{args.out}: name the file .csv or .libsvm (the format is taken from the name)")
    print(json.dumps({"out": args.out, "rows": int(X.shape[0]), "features": int(X.shape[1]),
                      "label": "target" if low.endswith(".csv") else "first field"}))


def bench(args) -> None:
    """Run ``benchmarks/harness.py`` of the source checkout this package comes from."""
    harness = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "benchmarks", "harness.py")
    if not os.path.exists(harness):
        raise ConfigError(f"{harness}: not found; shardlearn bench runs from a source checkout (pip install -e .)")
    cmd = [sys.executable, harness, "--size", args.size, "--out", args.out, "--reps", str(args.reps),
           "--datasets", *args.datasets]
    cmd += ["--rows", str(args.rows)] if args.rows else []
    cmd += ["--only", *args.only] if args.only else []
    if subprocess.call(cmd) != 0:
        raise ConfigError("the benchmark harness failed (its output is above)")
