"""Mini-batch local SGD under ``sign`` and a sparsifier, averaging at the default against every
8 steps: the figures behind README's "Mini-batch local SGD likewise" (``TrainConfig.average_steps``).

``LogisticRegression(strategy="local_sgd", optimizer=O, max_iter=2, random_state=0, workers=W)``
on a9a (the project's data folder), held-out log-loss of each codec over the plain fit's, at the
default averaging and with ``sync_every=8`` (the default before 2026-12-07). Each fit is
deterministic (seeded shards, batches and codecs): one fit a cell.

    python benchmarks/bench_local_sgd_codecs.py --out benchmarks/results/local-sgd-codecs
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402

OPTIMIZERS = ("sgd", "momentum", "adagrad")
CODECS = ("sign", "topk:0.1+int8")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    ap.add_argument("--workers", default="2,4")
    ap.add_argument("--out", default="benchmarks/results/local-sgd-codecs")
    args = ap.parse_args(argv)
    from sklearn.datasets import load_svmlight_file
    from sklearn.metrics import log_loss

    from shardlearn import LogisticRegression

    X, y = load_svmlight_file(os.path.join(args.data, "a9a", "a9a"), n_features=123)
    Xt, yt = load_svmlight_file(os.path.join(args.data, "a9a", "a9a.t"), n_features=123)
    y, yt = (y > 0).astype(int), (yt > 0).astype(int)

    def held_out(**kw) -> float:
        return float(log_loss(yt, LogisticRegression(max_iter=2, random_state=0, **kw).fit(X, y).predict_proba(Xt)[:, 1]))

    rows = []
    for opt in OPTIMIZERS:
        for w in (int(v) for v in args.workers.split(",")):
            base = dict(strategy="local_sgd", optimizer=opt, workers=w)
            plain = held_out(**base)
            for codec in CODECS:
                rows.append({"optimizer": opt, "workers": w, "codec": codec, "plain": plain,
                             "default": held_out(compression=codec, **base) / plain,
                             "every_8": held_out(compression=codec, sync_every=8, **base) / plain})
                print(rows[-1], flush=True)
    machine = facts()
    lines = ["# Mini-batch local SGD under coarse codecs: default averaging against every 8 steps "
             "(benchmarks/bench_local_sgd_codecs.py)", "",
             "a9a, 2 epochs, one deterministic fit a cell; held-out log-loss over the plain fit's.", "",
             "| optimizer | workers | codec | plain held-out | default / plain | every 8 steps / plain |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['optimizer']} | {r['workers']} | {r['codec']} | {r['plain']:.5f} | {r['default']:.4f} | "
              f"{r['every_8']:.4f} |" for r in rows]
    lines += ["", f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores."]
    os.makedirs(args.out, exist_ok=True)
    save(args.out, "local-sgd-codecs", rows, machine, lines)


if __name__ == "__main__":
    main()
