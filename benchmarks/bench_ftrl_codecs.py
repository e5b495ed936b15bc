"""Per-example FTRL local SGD under each codec, at git revisions side by side: held-out
log-loss over the plain fit's on a9a (2 epochs, alpha 1e-4, ``batch_size=1``, 2 and 4
workers). The figures behind README's "FTRL per example ... codes its weights and its z
apart" (before: the weights and z coded as one vector; after: a codec state a column):

    python benchmarks/bench_ftrl_codecs.py --revs 5e49170^ HEAD --out benchmarks/results/ftrl-codecs.md

Each revision runs in its own process from its own tree (``revisions.py``); every fit is
seeded (shards, order, codecs), one fit a cell.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import report, revisions  # noqa: E402
from benchmarks.machine import facts  # noqa: E402

CODECS = ("int8", "topk:0.1+int8", "sign", "topk:0.01")
WORKERS = (2, 4)
DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")


def fits(data: str) -> dict:
    """``{workers: {codec: held-out over plain}, plus "plain"}`` under the shardlearn on ``sys.path``."""
    from sklearn.datasets import load_svmlight_file
    from sklearn.metrics import log_loss

    from shardlearn import LogisticRegression

    X, y = load_svmlight_file(os.path.join(data, "a9a", "a9a"), n_features=123)
    Xt, yt = load_svmlight_file(os.path.join(data, "a9a", "a9a.t"), n_features=123)
    y, yt = (y > 0).astype(int), (yt > 0).astype(int)
    out = {}
    for w in WORKERS:
        kw = dict(strategy="local_sgd", optimizer="ftrl", batch_size=1, workers=w, max_iter=2, random_state=0,
                  alpha=1e-4)

        def held_out(**more) -> float:
            return float(log_loss(yt, LogisticRegression(**kw, **more).fit(X, y).predict_proba(Xt)[:, 1]))

        plain = held_out()
        out[str(w)] = dict({c: held_out(compression=c) / plain for c in CODECS}, plain=plain)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--revs", nargs="+", default=["HEAD"])
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--out")
    ap.add_argument("--here", action="store_true", help="fit under the shardlearn importable here, print JSON")
    args = ap.parse_args()
    data = os.path.abspath(args.data)
    if args.here:
        print(json.dumps(fits(data)))
        return
    got = revisions.each(__file__, args.revs, ["--data", data])
    m = facts()
    lines = ["# Per-example FTRL local SGD under each codec (benchmarks/bench_ftrl_codecs.py)", "",
             "a9a, 2 epochs, alpha 1e-4, batch_size=1, one seeded fit a cell: held-out log-loss over the plain "
             f"fit's (plain's own in the last column). Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}.",
             "", "| revision | workers | " + " | ".join(CODECS) + " | plain held-out |",
             "|---|---|" + "---|" * (len(CODECS) + 1)]
    for sha, by in got.items():
        for w, row in by.items():
            lines.append(f"| {sha} | {w} | " + " | ".join(f"{row[c]:.4f}" for c in CODECS) + f" | {row['plain']:.5f} |")
    report.emit(lines, args.out)


if __name__ == "__main__":
    main()
