"""Held-out log-loss over L* after ``max_iter=2`` across seeds, splits and codecs: how far a
stochastic strategy's answer moves with ``random_state`` (issue 14; kddcup99's merged
changes, ``kernels.delta``, and their codec's units, ``comm/rows.py``).

``LogisticRegression(max_iter=2, random_state=SEED, strategy=S, workers=2, partition=P,
compression=C)``, every other setting at its default (``--schedule`` sets one); data and L*
as ``bench_defaults.py`` loads them (kddcup99 hashed, its own test file). Beside each
held-out ratio, the fit's training objective over the optimum's, F / F*: kddcup99's test
file is another distribution, where a fit stopped further from the optimum can score better
held out, so F / F* says which fit learned more.

    python benchmarks/bench_seeds.py --data kddcup99 --out benchmarks/results/seeds-kddcup99
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import load, save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402


def main(argv=None):
    from sklearn.metrics import log_loss

    from shardlearn import LogisticRegression

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for seeds.jsonl and seeds.md")
    p.add_argument("--data", default="kddcup99")
    p.add_argument("--strategies", default="bsp,ssp,asp,local_sgd,hogwild")
    p.add_argument("--partitions", default="random,contiguous")
    p.add_argument("--compression", default="none,int8")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--schedule", default=None, help="every fit's schedule (default: the estimator's own)")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    warnings.simplefilter("ignore", RuntimeWarning)
    X, y, Xt, yt = load(args.data)
    optimum = LogisticRegression(tol=1e-10).fit(X, y)
    best, fbest = log_loss(yt, optimum.predict_proba(Xt)), optimum.objective(X, y)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for strategy, part, codec in itertools.product(args.strategies.split(","), args.partitions.split(","),
                                                   args.compression.split(",")):
        if codec != "none" and strategy == "hogwild":
            continue  # one shared state: nothing travels
        fits = [LogisticRegression(max_iter=2, random_state=s, strategy=strategy, workers=2, partition=part,
                                   compression=codec, schedule=args.schedule).fit(X, y) for s in seeds]
        rows.append({"data": args.data, "lstar": best, "fstar": fbest, "strategy": strategy, "partition": part,
                     "compression": codec, "schedule": fits[0].train_config().schedule, "seeds": seeds,
                     "ratios": [log_loss(yt, f.predict_proba(Xt)) / best for f in fits],
                     "objective_ratios": [f.objective(X, y) / fbest for f in fits]})
        print(json.dumps(rows[-1]), flush=True)
    title = f"# {args.data}: held-out log-loss / L* (L* {best:.4f}) after max_iter=2, 2 workers, seeds {args.seeds}"
    title += f", schedule={args.schedule}" if args.schedule else ""
    head = "| strategy | schedule | partition | compression | " + " | ".join(f"seed {s}" for s in seeds) + " | range |"
    lines = [title, "", f"Machine: {json.dumps(facts())}", "", head, "|---|---|---|---|" + "---|" * (len(seeds) + 1)]
    lines += _table(rows, "ratios")
    lines += ["", f"Training objective / F* (F* {fbest:.5f}, the L-BFGS optimum's) of the same fits:", "", head,
              "|---|---|---|---|" + "---|" * (len(seeds) + 1)]
    lines += _table(rows, "objective_ratios")
    save(args.out, "seeds", rows, facts(), lines)


def _table(rows, key):
    return [f"| {r['strategy']} | {r['schedule']} | {r['partition']} | {r['compression']} | "
            + " | ".join(f"{v:.4f}" for v in r[key]) + f" | {np.min(r[key]):.3f}-{np.max(r[key]):.3f} |" for r in rows]


if __name__ == "__main__":
    main()
