"""Is a miss of 1.01 x L* after 2 epochs the rule's or ours? Held-out log-loss / L* on the
small real datasets for Vowpal Wabbit (its defaults: normalized adaptive invariant updates,
no penalty, the file's order every pass) after 1, 2, 4 and 8 passes, for the per-example
kernel with VW's settings (``alpha=0``, ``shuffle=False``) and with shardlearn's defaults
(alpha 1e-4, shuffled epochs), and for the kernel's default learning rate against others
at 2 epochs. One process throughout; L* as in ``bench_defaults.py``.

    python benchmarks/bench_rule_vs_vw.py --out benchmarks/results/rule-vs-vw
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import load, save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402
from benchmarks.systems import VowpalWabbit  # noqa: E402

EPOCHS = (1, 2, 4, 8)
RATES = (0.25, 0.5, 1.0, 2.0, 4.0)


def main(argv=None):
    from sklearn.metrics import log_loss

    from shardlearn import LogisticRegression

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for rule.jsonl and rule.md")
    p.add_argument("--data", default="a9a,w8a,mushrooms", help="comma-separated datasets")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    warnings.simplefilter("ignore", RuntimeWarning)
    rows = []
    for name in args.data.split(","):
        X, y, Xt, yt = load(name)
        best = log_loss(yt, LogisticRegression(tol=1e-10).fit(X, y).predict_proba(Xt))
        vw = VowpalWabbit()
        vw.prepare(X, y)
        row = {"data": name, "lstar": best, "vw": {}, "kernel, VW's settings": {}, "kernel, defaults": {}, "rates": {}}
        for e in EPOCHS:
            w, b, _ = vw.fit(X, y, e)
            row["vw"][e] = log_loss(yt, 1 / (1 + np.exp(-(np.asarray(Xt @ w).ravel() + b)))) / best
            for label, kw in (("kernel, VW's settings", dict(alpha=0.0, shuffle=False)), ("kernel, defaults", {})):
                est = LogisticRegression(solver="sgd", workers=1, max_iter=e, tol=None, random_state=0, **kw)
                row[label][e] = log_loss(yt, est.fit(X, y).predict_proba(Xt)) / best
        for lr in RATES:
            est = LogisticRegression(solver="sgd", workers=1, max_iter=2, learning_rate=lr, random_state=0)
            row["rates"][lr] = log_loss(yt, est.fit(X, y).predict_proba(Xt)) / best
        rows.append(row)
        print(json.dumps(row), flush=True)
    machine = facts()
    lines = ["# The rule against Vowpal Wabbit: held-out log-loss / L*", "", f"Machine: {json.dumps(machine)}", "",
             "| data | system | " + " | ".join(f"{e} epochs" for e in EPOCHS) + " |", "|---|---|" + "---|" * len(EPOCHS)]
    for r in rows:
        for label, key in (("Vowpal Wabbit (passes)", "vw"), ("kernel, alpha 0, no shuffle", "kernel, VW's settings"),
                           ("kernel, defaults", "kernel, defaults")):
            lines.append(f"| {r['data']} | {label} | " + " | ".join(f"{r[key][e]:.4f}" for e in EPOCHS) + " |")
    lines += ["", "Default settings, 2 epochs, by learning rate (default 0.5):", "",
              "| data | " + " | ".join(f"lr {lr}" for lr in RATES) + " |", "|---|" + "---|" * len(RATES)]
    lines += [f"| {r['data']} | " + " | ".join(f"{r['rates'][lr]:.4f}" for lr in RATES) + " |" for r in rows]
    save(args.out, "rule", rows, machine, lines)


if __name__ == "__main__":
    main()
