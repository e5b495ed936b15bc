"""Rows a step against held-out loss for per-example ``asp``/``ssp`` on K workers: why a step on
K > 2 workers is at most ``MANY_SYNC_EVERY`` batches over K - 1 (``TrainConfig.step_rows``).

``LogisticRegression(max_iter=EPOCHS, alpha=ALPHA, random_state=SEED, strategy=S, workers=K,
sync_every=H)`` on D2's first ``--rows`` rows (``bench_defaults.load``: its held-out split), one
fit per (K, H, seed), ``H`` given (rows a step ``256 H``: a ``sync_every`` said is not divided
by K - 1) and the default (``H = default``: the rule's own step), against one process
(``solver="sgd"``, the same epochs) and L*, the held-out log-loss of the L-BFGS optimum at the
same alpha. Fit seconds include the copy of the data to the workers.

    python benchmarks/bench_many_workers.py --out benchmarks/results/many-workers
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import load, save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402


def main(argv=None):
    from sklearn.metrics import log_loss

    from shardlearn import LogisticRegression
    from shardlearn.runtime.config import TrainConfig, sync_batches

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for many.jsonl and many.md")
    p.add_argument("--rows", type=int, default=2_000_000, help="training rows of D2")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--alpha", type=float, default=1e-6)
    p.add_argument("--strategy", default="asp")
    p.add_argument("--seeds", default="0")
    p.add_argument("--plan", default="4:default,1,2,3,5,7,15;3:default,4,15;2:default,30,120",
                   help="K:H,H,...;... (H batches a step, or default: the rule's)")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)
    os.makedirs(args.out, exist_ok=True)
    X, y, Xt, yt = load("D2", args.rows)
    best = log_loss(yt, LogisticRegression(alpha=args.alpha, tol=1e-10).fit(X, y).predict_proba(Xt))
    kw = dict(max_iter=args.epochs, alpha=args.alpha)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        one = LogisticRegression(solver="sgd", random_state=seed, **kw).fit(X, y)
        rows.append({"workers": 1, "sync_every": None, "step_rows": None, "seed": seed, "fit_s": None,
                     "ratio": log_loss(yt, one.predict_proba(Xt)) / best})
        print(json.dumps(rows[-1]), flush=True)
        for part in args.plan.split(";"):
            k, hs = part.split(":")
            k = int(k)
            LogisticRegression(max_iter=1, strategy=args.strategy, workers=k).fit(X[:2000], y[:2000])  # warm group
            for h in hs.split(","):
                given = None if h == "default" else int(h)
                cfg = TrainConfig(strategy=args.strategy, workers=k, sync_every=given)
                step = cfg.step_rows(X.shape[0] // k, workers=k)
                t = time.perf_counter()
                est = LogisticRegression(strategy=args.strategy, workers=k, sync_every=given, random_state=seed,
                                         **kw).fit(X, y)
                rows.append({"workers": k, "sync_every": h, "step_rows": step, "seed": seed,
                             "fit_s": round(time.perf_counter() - t, 2),
                             "ratio": log_loss(yt, est.predict_proba(Xt)) / best,
                             "rule_batches": sync_batches(X.shape[0] // k, cfg.batch_size)})
                print(json.dumps(rows[-1]), flush=True)
    machine = facts()
    lines = [f"# Rows a step on K workers: per-example {args.strategy}, D2 {args.rows:,} rows, {args.epochs} "
             f"epoch(s), alpha {args.alpha:g} (benchmarks/bench_many_workers.py)", "", f"Machine: {json.dumps(machine)}",
             "", "One fit each; held-out log-loss over L*. `default`: the rule's step (TrainConfig.step_rows); "
             "a number: that many batches of 256 rows a step, undivided.", "",
             "| workers | batches a step | rows a step | seed | fit s | held-out / L* |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['workers']} | {r['sync_every'] or '-'} | {r['step_rows'] or '-'} | {r['seed']} | "
              f"{'-' if r['fit_s'] is None else format(r['fit_s'], '.1f')} | {r['ratio']:.4f} |" for r in rows]
    save(args.out, "many", rows, machine, lines)


if __name__ == "__main__":
    main()
