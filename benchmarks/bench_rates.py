"""Learning rates, swept: held-out log-loss over L* after ``--max-iter`` epochs for one
stochastic strategy at a few worker counts, at its default rate and at each rate given, on
the datasets of ``bench_defaults.py`` (issue 14). It is where the default rates come from:
the linear schedule's 3 (``--strategy sgd --workers 1``) and local SGD's sqrt(K) growth
with the workers it averages (``--strategy local_sgd --workers 2,4``).

Every other setting is the estimator's default (alpha 1e-4); a cell is the mean over
``--seeds`` (each seed draws the shards and the row order), with the range beside it.

    python benchmarks/bench_rates.py --strategy local_sgd --workers 2,4 --rates 3,4.24,6,8.5,12 \\
        --out benchmarks/results/rates-local-sgd
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import FILES, SYNTHETIC, _warm_up, load, save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402


def _cell(values: list) -> str:
    """A mean over seeds, with its range when there are several: ``1.0227 (1.0220-1.0285)``."""
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ({min(values):.4f}-{max(values):.4f})"


def main(argv=None):
    from sklearn.metrics import log_loss

    from shardlearn import LogisticRegression

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for rates.jsonl and rates.md")
    p.add_argument("--strategy", default="local_sgd", help="a stochastic strategy, or sgd for one process")
    p.add_argument("--workers", default="2", help="comma-separated worker counts")
    p.add_argument("--rates", default="3,6", help="comma-separated learning rates, beside the default")
    p.add_argument("--data", default=",".join(list(FILES) + ["kddcup99"] + list(SYNTHETIC)),
                   help="comma-separated datasets")
    p.add_argument("--rows", type=int, default=500_000, help="training rows of D1 and D2 (BENCHMARKS.md: 2,000,000)")
    p.add_argument("--max-iter", type=int, default=2, help="epochs of every fit")
    p.add_argument("--seeds", default="0,1", help="comma-separated random_state values")
    p.add_argument("--sync-every", type=int, default=None, help="batches per exchange (default: the strategy's own)")
    args = p.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    kind = dict(solver="sgd") if args.strategy == "sgd" else dict(strategy=args.strategy)
    cols = ["default"] + [f"{r:g}" for r in rates]
    os.makedirs(args.out, exist_ok=True)
    warnings.simplefilter("ignore", RuntimeWarning)
    _warm_up(LogisticRegression)
    rows = []
    for name in args.data.split(","):
        X, y, Xt, yt = load(name, args.rows)
        best = log_loss(yt, LogisticRegression(tol=1e-10).fit(X, y).predict_proba(Xt))
        for workers in [int(w) for w in args.workers.split(",")]:
            row = {"data": name, "rows": int(X.shape[0]), "lstar": best, "workers": workers, "ratios": {}}
            for col, rate in zip(cols, [None] + rates):
                kw = dict(kind, workers=workers, max_iter=args.max_iter, learning_rate=rate, sync_every=args.sync_every)
                row["ratios"][col] = [log_loss(yt, LogisticRegression(random_state=s, **kw).fit(X, y).predict_proba(Xt))
                                      / best for s in seeds]
            rows.append(row)
            print(json.dumps(row), flush=True)
    machine = facts()
    every = f", sync_every={args.sync_every}" if args.sync_every else ""
    lines = [f"# Learning rates: held-out log-loss / L* after max_iter={args.max_iter}, {args.strategy}{every}, "
             f"seeds {args.seeds} (mean, range)", "", f"Machine: {json.dumps(machine)}", "",
             "| data | workers | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    lines += [f"| {r['data']} ({r['rows']:,} rows, L* {r['lstar']:.4f}) | {r['workers']} | "
              + " | ".join(_cell(r["ratios"][c]) for c in cols) + " |" for r in rows]
    save(args.out, "rates", rows, machine, lines)


if __name__ == "__main__":
    main()
