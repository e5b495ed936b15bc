"""The asynchronous strategies' spread from run to run: ``shardlearn train`` (contiguous shards
of a CSV, the defaults) under ``asp`` and ``ssp`` on 2 workers, repeated, each run's training
objective over the optimum's (F / F*). What the warm start (``strategies/ps_sgd.py``: rank 0's
first step before the others') is measured by; run it on a checkout before and after.

Data: ``bench_softmax.three_classes`` (6,000 x 8 dense columns of scales 0.01 to 1,000, one at
50 +- 1, 3 classes) as a softmax, and its class 2 against the rest as a logistic model. F*: the
same model's L-BFGS fit (tol 1e-10).

    python benchmarks/bench_warm_start.py --runs 8 --out benchmarks/results/warm-start
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.bench_softmax import three_classes  # noqa: E402
from benchmarks.machine import facts  # noqa: E402


def main(argv=None):
    import pandas as pd

    import shardlearn
    from shardlearn import LogisticRegression
    from shardlearn.cli import main as cli

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for warm_start.jsonl and warm_start.md")
    p.add_argument("--runs", type=int, default=8, help="runs of each strategy and model (default 8)")
    p.add_argument("--strategies", default="asp,ssp", help="comma-separated (default asp,ssp)")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    warnings.simplefilter("ignore")
    X, y3 = three_classes()
    folder = tempfile.mkdtemp()
    rows = []
    for model, y in (("softmax", y3), ("logistic", (y3 == 2).astype(int))):
        csv = os.path.join(folder, f"{model}.csv")
        pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]).assign(label=y).to_csv(csv, index=False)
        best = LogisticRegression(tol=1e-10, max_iter=2000).fit(X, y).objective(X, y)
        for strategy in args.strategies.split(","):
            ratios = []
            for _ in range(args.runs):
                out = os.path.join(folder, "m")
                cli(["train", csv, "--label", "label", "--model", model, "--out", out, "--strategy", strategy,
                     "--workers", "2"])
                ratios.append(shardlearn.load(out).objective(X, y) / best)
            rows.append({"model": model, "strategy": f"{strategy} x2", "ratios": ratios, "max": max(ratios),
                         "median": float(np.median(ratios))})
    machine = facts()
    lines = [f"# F / F* of {args.runs} runs of `shardlearn train` (2 workers, contiguous shards, defaults)", "",
             f"Machine: {machine}", "", "| model | strategy | median | max | runs |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['strategy']} | {r['median']:.4f} | {r['max']:.4f} | "
              + ", ".join(f"{v:.4f}" for v in r["ratios"]) + " |" for r in rows]
    save(args.out, "warm_start", rows, machine, lines)


if __name__ == "__main__":
    main()
