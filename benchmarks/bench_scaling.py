"""Examples per second of learning, 1 worker against 2, per stochastic strategy (issue 14:
"2 workers >= 1.7x one worker's examples/s" for ``asp`` and ``hogwild``).

``LogisticRegression(max_iter=EPOCHS, alpha=1e-6, random_state=0, strategy=S, workers=W)``
on D2's first ``--rows`` rows in memory (its generator, ``BENCHMARKS.md``). The learning
rate of a fit is its examples (every worker's, every epoch) over the seconds its epochs
took (the fit's own per-epoch log: worker start-up, the copy of the data to the workers
and the result's return are outside it, and are reported apart as the whole fit's
seconds). Repetitions alternate 1 and 2 workers, so both see the same machine; the
table gives the median of each and the ratio of the medians.

    python benchmarks/bench_scaling.py --rows 2000000 --out benchmarks/results/scaling
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402

STRATEGIES = ("hogwild", "asp", "ssp", "bsp", "local_sgd")


def one_fit(X, y, strategy: str, workers: int, epochs: int) -> dict:
    from shardlearn import LogisticRegression

    t = time.perf_counter()
    m = LogisticRegression(max_iter=epochs, alpha=1e-6, random_state=0, strategy=strategy, workers=workers).fit(X, y)
    wall = time.perf_counter() - t
    steps = m.fit_result_.steps
    learn = float(sum(s["step_seconds"] for s in steps))
    examples = int(sum(s["examples"] for s in steps))
    return {"strategy": strategy, "workers": workers, "fit_s": wall, "learning_s": learn, "examples": examples,
            "examples_per_s": examples / learn, "last_epoch_loss": float(steps[-1]["loss"])}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    ap.add_argument("--out", default="benchmarks/results/scaling")
    args = ap.parse_args(argv)
    from shardlearn import LogisticRegression
    from shardlearn.data.synthetic import make_d2

    X, y = make_d2(args.rows)
    for s in args.strategies:  # worker groups started and the kernel loaded outside the timed fits
        for w in (1, 2):
            LogisticRegression(max_iter=1, strategy=s, workers=w).fit(X[:2000], y[:2000])
    rows = []
    for rep in range(args.reps):
        for s in args.strategies:
            for w in ((1, 2) if rep % 2 == 0 else (2, 1)):
                r = dict(one_fit(X, y, s, w, args.epochs), rep=rep)
                print(r, flush=True)
                rows.append(r)
    machine = facts()
    lines = [f"# Learning rate, 1 worker against 2 (benchmarks/bench_scaling.py --rows {args.rows})", "",
             f"D2's first {args.rows:,} rows in memory, {args.epochs} epochs, alpha 1e-6, defaults otherwise; "
             f"median of {args.reps} alternating repetitions. Learning: examples over the seconds of the epochs "
             "(the fit's per-epoch log); fit: the whole `fit` call.",
             f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores.", "",
             "| strategy | examples/s, 1 worker | examples/s, 2 workers | ratio | fit s, 1 worker | fit s, 2 workers "
             "| last epoch's loss, 1 / 2 |", "|---|---|---|---|---|---|---|"]
    for s in args.strategies:
        med = {w: {k: float(np.median([r[k] for r in rows if r["strategy"] == s and r["workers"] == w]))
                   for k in ("examples_per_s", "fit_s", "last_epoch_loss")} for w in (1, 2)}
        lines.append(f"| {s} | {med[1]['examples_per_s']:,.0f} | {med[2]['examples_per_s']:,.0f} | "
                     f"{med[2]['examples_per_s'] / med[1]['examples_per_s']:.2f} | {med[1]['fit_s']:.1f} | "
                     f"{med[2]['fit_s']:.1f} | {med[1]['last_epoch_loss']:.5f} / {med[2]['last_epoch_loss']:.5f} |")
    os.makedirs(args.out, exist_ok=True)
    save(args.out, "scaling", rows, machine, lines)


if __name__ == "__main__":
    main()
