"""Online throughput: one pass over D2's first N rows, one example at a time, next to
Vowpal Wabbit reading its own cache and scikit-learn's SGDClassifier (issue 14).

For each system: examples per second of the pass (VW: the timed pass reads the cache a
first, untimed pass wrote), the progressive log-loss (the loss of each example before
learning from it, VW's "average loss") where the system reports it, and the held-out
log-loss on D2's test split. shardlearn's first call in a process loads the compiled
kernel from numba's cache: timed separately, not in the pass.

    python benchmarks/bench_online.py --rows 2000000 --out benchmarks/results/online-d2
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.machine import facts  # noqa: E402
from benchmarks.systems import write_vw  # noqa: E402
from shardlearn.data.synthetic import D2_BITS, make_d2  # noqa: E402

ALPHA = 0.0  # one pass, no penalty: what VW and SGDClassifier run by default


def logloss(y, z):
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def shardlearn_pass(X, y, Xt, yt, rule, lr):
    from shardlearn.kernels import sgd as kernel

    t = time.perf_counter()
    # two rows of X itself: the same compiled specialisation (CSR, its dtypes) the pass runs
    kernel.run(kernel.new_state(X.shape[1], rule), X[:2], y[:2], None, np.arange(2), loss="logistic", rule=rule,
               lr=lr)
    load_s = time.perf_counter() - t
    state = kernel.new_state(X.shape[1], rule)
    t = time.perf_counter()
    out = kernel.run(state, X, y, None, np.arange(X.shape[0]), loss="logistic", rule=rule, lr=lr)
    secs = time.perf_counter() - t
    w = kernel.finalize(state, rule=rule, lr=lr)
    return {"system": f"shardlearn kernel, {rule}", "seconds": secs, "examples_s": X.shape[0] / secs,
            "progressive_logloss": float(out[0] / out[1]), "heldout_logloss": logloss(yt, Xt @ w[:-1] + w[-1]),
            "first_call_s": load_s}


def vw_pass(X, y, Xt, yt, folder):
    from vowpalwabbit import pyvw

    path = os.path.join(folder, "train.vw")
    write_vw(path, X, y)
    cache = os.path.join(folder, "train.cache")
    opts = f"--loss_function logistic -b {D2_BITS} --quiet --holdout_off"
    w = pyvw.Workspace(f"-d {path} -c --cache_file {cache} {opts}")  # writes the cache (untimed)
    w.run_parser()
    w.finish()
    model = os.path.join(folder, "model.vw")
    t = time.perf_counter()
    w = pyvw.Workspace(f"--cache_file {cache} {opts} -f {model}")
    w.run_parser()
    secs = time.perf_counter() - t
    progressive = w.get_sum_loss() / w.get_weighted_examples()
    w.finish()
    m = pyvw.Workspace(f"-i {model} -t --quiet")
    z = np.array([m.predict(_vw_line(Xt, i)) for i in range(Xt.shape[0])])  # VW's link-free score
    m.finish()
    return {"system": "Vowpal Wabbit 9, from its cache", "seconds": secs, "examples_s": X.shape[0] / secs,
            "progressive_logloss": float(progressive), "heldout_logloss": logloss(yt, z)}


def _vw_line(X, i):
    lo, hi = X.indptr[i], X.indptr[i + 1]
    return "| " + " ".join(f"{j}:{v:.7g}" for j, v in zip(X.indices[lo:hi], X.data[lo:hi]))


def sgdclassifier_pass(X, y, Xt, yt):
    from sklearn.linear_model import SGDClassifier

    clf = SGDClassifier(loss="log_loss", max_iter=1, tol=None, shuffle=False, random_state=0)  # alpha 1e-4
    Xi = X.copy()
    Xi.indices = Xi.indices.astype(np.int32)
    Xi.indptr = Xi.indptr.astype(np.int32)
    t = time.perf_counter()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(Xi, y)
    secs = time.perf_counter() - t
    Xti = Xt.copy()
    Xti.indices = Xti.indices.astype(np.int32)
    Xti.indptr = Xti.indptr.astype(np.int32)
    return {"system": "scikit-learn SGDClassifier (defaults, alpha 1e-4)", "seconds": secs,
            "examples_s": X.shape[0] / secs, "progressive_logloss": None,
            "heldout_logloss": logloss(yt, clf.decision_function(Xti))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--test-rows", type=int, default=100_000)
    p.add_argument("--out", required=True, help="folder for online.jsonl and online.md")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    X, y = make_d2(args.rows, seed=0)
    Xt, yt = make_d2(args.test_rows, seed=0, split="test")
    y, yt = y.astype(np.float64), yt.astype(np.float64)
    rows = [shardlearn_pass(X, y, Xt, yt, "normalized", 0.5), shardlearn_pass(X, y, Xt, yt, "adagrad", 0.1),
            shardlearn_pass(X, y, Xt, yt, "ftrl", 0.5)]
    with tempfile.TemporaryDirectory(prefix="bench-online-") as folder:
        try:
            rows.append(vw_pass(X, y, Xt, yt, folder))
        except ImportError:
            print("vowpalwabbit is not installed (pip install -e '.[bench]'): VW skipped", file=sys.stderr)
    rows.append(sgdclassifier_pass(X, y, Xt, yt))
    import numba

    machine = dict(facts(), numba=numba.__version__)
    with open(os.path.join(args.out, "online.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(dict(r, rows=args.rows, machine=machine)) + "\n")
    lines = [f"# Online throughput: one pass over D2's first {args.rows:,} rows (26 hashed features of "
             f"2^{D2_BITS}), logistic, no penalty", "", f"Machine: {json.dumps(machine)}", "",
             "| system | seconds | examples/s | progressive log-loss | held-out log-loss |", "|---|---|---|---|---|"]
    for r in rows:
        prog = "-" if r["progressive_logloss"] is None else f"{r['progressive_logloss']:.5f}"
        lines.append(f"| {r['system']} | {r['seconds']:.2f} | {r['examples_s']:,.0f} | {prog} | "
                     f"{r['heldout_logloss']:.5f} |")
    lines += ["", "shardlearn's first kernel call in a process (loading the compiled code from numba's cache): "
              + ", ".join(f"{r['first_call_s']:.2f} s" for r in rows if "first_call_s" in r) + "."]
    with open(os.path.join(args.out, "online.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
