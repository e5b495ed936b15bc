"""How often per-example ``asp`` and ``ssp`` workers exchange: fit time and held-out loss
for each rule "as many batches a step as leave a worker STEPS exchanges an epoch, 1 to CAP"
(``TrainConfig.step_rows``; the rule is applied here as an explicit ``sync_every``).

``LogisticRegression(max_iter=EPOCHS, random_state=SEED, strategy=S, workers=W,
sync_every=H)`` at alpha 1e-4 (``bench_defaults.py``'s setting; ``--alpha`` for D2's 1e-6),
everything else default; L* is the held-out log-loss of the L-BFGS optimum at the same
alpha. Fit seconds include the copy of the data to the workers. The rules alternate
within each seed, so they see the same stretch of the machine.

    python benchmarks/bench_exchanges.py --data kddcup99,D2,D1 --out benchmarks/results/exchanges
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
    p.add_argument("--out", required=True, help="folder for exchanges.jsonl and exchanges.md")
    p.add_argument("--data", default="kddcup99,D2,D1", help="comma-separated datasets (bench_defaults.py's)")
    p.add_argument("--rows", type=int, default=500_000, help="training rows of D1 and D2")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--alpha", type=float, default=1e-4)
    p.add_argument("--workers", default="2,4")
    p.add_argument("--strategies", default="asp,ssp")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--rules", default="256:16,128:32", help="STEPS:CAP pairs, comma-separated")
    args = p.parse_args(argv)
    rules = [tuple(int(v) for v in r.split(":")) for r in args.rules.split(",")]
    warnings.simplefilter("ignore", RuntimeWarning)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for name in args.data.split(","):
        X, y, Xt, yt = load(name, args.rows)
        best = log_loss(yt, LogisticRegression(alpha=args.alpha, tol=1e-10).fit(X, y).predict_proba(Xt))
        for workers in (int(w) for w in args.workers.split(",")):
            LogisticRegression(max_iter=1, strategy="asp", workers=workers).fit(X[:2000], y[:2000])  # warm group
            for strategy in args.strategies.split(","):
                for seed in (int(s) for s in args.seeds.split(",")):
                    for steps, cap in rules:
                        # the rule's sync_every, H batches a step on every worker count: a sync_every said
                        # is not divided by K - 1 (the default rule divides, TrainConfig.step_rows)
                        h = sync_batches(X.shape[0] // workers, TrainConfig().batch_size, steps, cap)
                        t = time.perf_counter()
                        est = LogisticRegression(max_iter=args.epochs, alpha=args.alpha, random_state=seed,
                                                 strategy=strategy, workers=workers, sync_every=h).fit(X, y)
                        row = {"data": name, "rows": int(X.shape[0]), "workers": workers, "strategy": strategy,
                               "seed": seed, "rule": f"{steps}:{cap}", "sync_every": h,
                               "fit_s": round(time.perf_counter() - t, 2),
                               "ratio": log_loss(yt, est.predict_proba(Xt)) / best}
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    machine = facts()
    lines = [f"# Exchanges an epoch: per-example asp/ssp, {args.epochs} epochs, alpha {args.alpha:g} "
             f"(benchmarks/bench_exchanges.py)", "", f"Machine: {json.dumps(machine)}", "",
             "Rule STEPS:CAP: as many batches (of 256 rows) a step as leave a worker STEPS exchanges an epoch, "
             "1 to CAP, on every worker count (the default rule divides it by K - 1 beyond 2 workers; a "
             "sync_every said is not divided). One fit per seed; held-out log-loss over L*.", "",
             "| data | workers | strategy | seed | rule | batches a step | fit s | held-out / L* |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['data']} ({r['rows']:,} rows) | {r['workers']} | {r['strategy']} | {r['seed']} | {r['rule']} | "
              f"{r['sync_every']} | {r['fit_s']:.1f} | {r['ratio']:.4f} |" for r in rows]
    save(args.out, "exchanges", rows, machine, lines)


if __name__ == "__main__":
    main()
