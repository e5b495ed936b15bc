"""Held-out log-loss over L* after ``max_iter=2`` across seeds, splits and codecs: how far a
stochastic strategy's answer moves with ``random_state`` (issue 14; kddcup99's merged
changes, ``kernels.delta``, and their codec's units, ``comm/rows.py``).

``LogisticRegression(max_iter=2, random_state=SEED, strategy=S, workers=2, partition=P,
compression=C)``, every other setting at its default; data and L* as ``bench_defaults.py``
loads them (kddcup99 hashed, its own test file).

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
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    warnings.simplefilter("ignore", RuntimeWarning)
    X, y, Xt, yt = load(args.data)
    best = log_loss(yt, LogisticRegression(tol=1e-10).fit(X, y).predict_proba(Xt))
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for strategy, part, codec in itertools.product(args.strategies.split(","), args.partitions.split(","),
                                                   args.compression.split(",")):
        if codec != "none" and strategy == "hogwild":
            continue  # one shared state: nothing travels
        got = [log_loss(yt, LogisticRegression(max_iter=2, random_state=s, strategy=strategy, workers=2, partition=part,
                                               compression=codec).fit(X, y).predict_proba(Xt)) / best for s in seeds]
        rows.append({"data": args.data, "lstar": best, "strategy": strategy, "partition": part, "compression": codec,
                     "seeds": seeds, "ratios": got})
        print(json.dumps(rows[-1]), flush=True)
    lines = [f"# {args.data}: held-out log-loss / L* (L* {best:.4f}) after max_iter=2, 2 workers, seeds {args.seeds}",
             "", f"Machine: {json.dumps(facts())}", "",
             "| strategy | partition | compression | " + " | ".join(f"seed {s}" for s in seeds) + " | range |",
             "|---|---|---|" + "---|" * (len(seeds) + 1)]
    lines += [f"| {r['strategy']} | {r['partition']} | {r['compression']} | "
              + " | ".join(f"{v:.4f}" for v in r["ratios"]) + f" | {np.min(r['ratios']):.3f}-{np.max(r['ratios']):.3f} |"
              for r in rows]
    save(args.out, "seeds", rows, facts(), lines)


if __name__ == "__main__":
    main()
