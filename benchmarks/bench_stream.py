"""Out-of-core benchmark: D2 of ../shared/BENCHMARKS.md written as one LIBSVM file of
``--rows`` rows, trained with ``--stream`` on 2 local workers (bsp SGD, one epoch), each
worker reading only its byte range again at every pass. Records each worker's peak RSS
next to the size of its shard, the passes, the time and the held-out log-loss.
``--strategy asp`` (or ``ssp``, ``hogwild``): that strategy per example at its defaults
instead, written to ``stream-d2-STRATEGY.md``.

    python benchmarks/bench_stream.py --rows 10000000 --out benchmarks/results
    python benchmarks/bench_stream.py --rows 2000000 --strategy asp --out benchmarks/results
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from machine import facts  # noqa: E402

from shardlearn.data.synthetic import make_d2  # noqa: E402
from shardlearn.runtime import distributed, group  # noqa: E402
from shardlearn.runtime.config import TrainConfig  # noqa: E402
from shardlearn.runtime.memory import peak_rss_mb, reset_peak_rss  # noqa: E402


def write_d2(path: str, rows: int, chunk: int = 1_000_000) -> float:
    """D2's first ``rows`` rows as LIBSVM (0-based), written chunk by chunk; seconds taken."""
    from sklearn.datasets import dump_svmlight_file

    t = time.perf_counter()
    X, y = make_d2(rows)
    with open(path + ".tmp", "wb") as f:
        for lo in range(0, rows, chunk):
            dump_svmlight_file(X[lo : lo + chunk], y[lo : lo + chunk], f, zero_based=True)
    os.replace(path + ".tmp", path)
    return time.perf_counter() - t


def logloss(params, Xt, yt) -> float:
    z = np.asarray(Xt @ params["w"]).ravel() + float(params["b"])
    return float(np.mean(np.logaddexp(0, z) - yt * z))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--test-rows", type=int, default=200_000)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--learning-rate", type=float, default=0.2)
    ap.add_argument("--strategy", default=None, help="asp, ssp or hogwild per example (default: bsp mini-batch)")
    ap.add_argument("--cache", default=os.path.join(os.path.dirname(__file__), "cache"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = ap.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    path = os.path.join(args.cache, f"d2-{args.rows}.svm")
    write_seconds = None
    if not os.path.exists(path):
        write_seconds = write_d2(path, args.rows)
        print(f"wrote {path}: {os.path.getsize(path) / 1e9:.2f} GB in {write_seconds:.0f} s", flush=True)
    size = os.path.getsize(path)
    Xt, yt = make_d2(args.test_rows, split="test")
    if args.strategy:  # per example, at the strategy's defaults
        cfg = TrainConfig(solver="sgd", strategy=args.strategy, workers=2, stream=True, alpha=1e-6, max_iter=1,
                          random_state=0, tol=None, partition="contiguous")  # a byte range each, as the CLI's
    else:
        cfg = TrainConfig(solver="sgd", strategy="bsp", workers=2, stream=True, alpha=1e-6, max_iter=1,
                          batch_size=args.batch_size, learning_rate=args.learning_rate, random_state=0, tol=None)
    group.shutdown()
    reset_peak_rss()
    t = time.perf_counter()
    # the file is 0-based: said, since "auto" reads a file whose rows never use column 0 as 1-based
    result = distributed.train_file("logistic", cfg, {"data": path, "n_features": 1 << 22, "zero_based": True})
    seconds = time.perf_counter() - t
    rec = {"rows": args.rows, "file_bytes": size, "write_seconds": write_seconds, "fit_seconds": round(seconds, 1),
           "heldout_logloss": logloss(result.params, Xt, yt), "driver_peak_rss_mb": round(peak_rss_mb(), 1),
           "workers": [{k: r.get(k) for k in ("rank", "rows", "bytes_read", "passes", "peak_rss_mb", "fit_seconds")}
                       for r in result.reports],
           "config": {k: getattr(cfg, k) for k in ("solver", "strategy", "workers", "batch_size", "learning_rate",
                                                   "alpha", "max_iter", "stream")},
           "machine": facts()}
    os.makedirs(args.out, exist_ok=True)
    name = "stream-d2" + (f"-{args.strategy}" if args.strategy else "")
    with open(os.path.join(args.out, f"{name}.jsonl"), "a") as f:
        f.write(json.dumps(rec) + "\n")
    lines = [f"# Out-of-core D2: {args.rows:,} rows, {size / 1e9:.2f} GB of LIBSVM, 2 workers streaming", "",
             f"`python benchmarks/bench_stream.py --rows {args.rows}"
             + (f" --strategy {args.strategy}" if args.strategy else "") + f"` on {rec['machine']['cpu']}, "
             f"{rec['machine']['cores']} cores, {rec['machine']['memory_gib']} GiB; "
             + (f"{args.strategy} per example (the normalized rule at its defaults)" if args.strategy else
                f"bsp SGD (AdaGrad, batch {args.batch_size} per worker, lr {args.learning_rate})")
             + ", one epoch, `stream=True`.", "",
             "| worker | rows | shard bytes per pass | passes | peak RSS (MB) |", "|---|---|---|---|---|"]
    for w in rec["workers"]:
        if w["rows"] is None:  # a dedicated parameter-server process reads no rows
            continue
        lines.append(f"| {w['rank']} | {w['rows']:,} | {w['bytes_read']:,} | {w['passes']} | {w['peak_rss_mb']:.0f} |")
    passes = "the epoch" if args.strategy else "the preconditioner's moments, one epoch"
    state = ("its shard of the kernel's 2^22-wide state (32 bytes a key; hogwild: the whole state, shared)"
             if args.strategy else "the model's 2^22-wide vectors (parameters, AdaGrad state, dense gradients)")
    lines += ["", f"Whole fit {seconds:.0f} s: a survey pass (rows, index range, labels), then the passes "
              f"counted above ({passes}); "
              f"held-out log-loss {rec['heldout_logloss']:.4f} on {args.test_rows:,} D2 test rows. "
              "Each worker's peak RSS counts its process (Python, numpy, torch, gloo: ~380 MB before any "
              f"data), its 8 MB text blocks and {state}, not its shard."]
    with open(os.path.join(args.out, f"{name}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
