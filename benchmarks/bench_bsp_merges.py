"""Per-example ``bsp``'s merges on D2: what an epoch costs and sends, plain and through a codec.

``LogisticRegression(strategy="bsp", workers=W, max_iter=1, random_state=0, compression=C)``
on D2's first ``--rows`` rows (held out: 200,000 test rows), everything else default; per
fit: the epoch's seconds (the worker loop, from the step record), the bytes rank 0's
collectives sent, its calls, and the held-out log-loss. Run it from a checkout of each
commit compared (``PYTHONPATH``) in one sitting: the machine is shared.

    python benchmarks/bench_bsp_merges.py --rows 1000000 --out benchmarks/results/bsp-merges/after.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    from sklearn.metrics import log_loss

    from shardlearn import LogisticRegression
    from shardlearn.data.synthetic import make_d2

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--codecs", default="none,int8")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    X, y = make_d2(a.rows)
    Xt, yt = make_d2(200_000, split="test")
    LogisticRegression(strategy="bsp", workers=a.workers, max_iter=1).fit(X[:20_000], y[:20_000])  # start, compile
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        for rep in range(a.reps):
            for codec in a.codecs.split(","):
                est = LogisticRegression(strategy="bsp", workers=a.workers, max_iter=1, random_state=0,
                                         compression=codec).fit(X, y)
                step = est.fit_result_.steps[-1]
                row = {"rows": a.rows, "workers": a.workers, "codec": codec, "rep": rep,
                       "epoch_s": round(step["step_seconds"], 3), "bytes_sent": step["bytes_sent"],
                       "calls": step["calls"], "held_out": log_loss(yt, est.predict_proba(Xt)[:, 1])}
                print(json.dumps(row), flush=True)
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
