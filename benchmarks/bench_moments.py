"""The preconditioner's moments under a codec, at git revisions side by side: L-BFGS
iterations of a 2-worker fit of a table with a timestamp-like column (1.7e9, spread 1e3), a
unit one and a value near 5e4 (spread 1), under no codec, ``int8`` and ``fp16``. The figures
behind README's "the setup's moments in float32" (before the change, float64 moments; then
float32 alone; then float32 with the cancelled columns resent):

    python benchmarks/bench_moments.py --revs a9bc94b 40a27f7 HEAD --out benchmarks/results/moments.md

Each revision runs in its own process from its own tree (``revisions.py``); the same rows,
the same seed, one fit each (L-BFGS is deterministic here: the counts repeat).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import report, revisions  # noqa: E402
from benchmarks.machine import facts  # noqa: E402

CODECS = ("none", "int8", "fp16")


def table(n: int = 20000, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    X = np.column_stack([1.7e9 + rng.normal(scale=1e3, size=n), rng.normal(size=n), 5e4 + rng.normal(size=n)])
    z = (X[:, 0] - 1.7e9) / 1e3 - X[:, 1] + (X[:, 2] - 5e4) * 2
    return X, (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)


def fits() -> dict:
    """``{codec: [iterations, training log-loss]}`` under the shardlearn on ``sys.path``."""
    from sklearn.metrics import log_loss

    from shardlearn import LogisticRegression

    X, y = table()
    out = {}
    for spec in CODECS:
        est = LogisticRegression(alpha=1e-4, workers=2, compression=spec, random_state=0).fit(X, y)
        out[spec] = [int(est.n_iter_), float(log_loss(y, est.predict_proba(X)[:, 1]))]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--revs", nargs="+", default=["HEAD"])
    ap.add_argument("--out")
    ap.add_argument("--here", action="store_true", help="fit under the shardlearn importable here, print JSON")
    args = ap.parse_args()
    if args.here:
        print(json.dumps(fits()))
        return
    got = revisions.each(__file__, args.revs, [])
    m = facts()
    lines = ["# The preconditioner's moments under a codec (benchmarks/bench_moments.py)", "",
             "L-BFGS iterations (training log-loss) of a 2-worker fit, 20,000 rows: a timestamp-like column "
             "(1.7e9, spread 1e3), a unit one, one near 5e4 (spread 1); alpha 1e-4, one fit each. "
             f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}.", "",
             "| revision | " + " | ".join(CODECS) + " |", "|---|" + "---|" * len(CODECS)]
    for sha, row in got.items():
        lines.append(f"| {sha} | " + " | ".join(f"{row[c][0]} ({row[c][1]:.6f})" for c in CODECS) + " |")
    report.emit(lines, args.out)


if __name__ == "__main__":
    main()
