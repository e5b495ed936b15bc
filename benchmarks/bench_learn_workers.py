"""Several stream learners over the parameter server (issue 15, item 6): examples/s and
progressive log-loss of ``shardlearn learn`` with N = 1, 2 learner processes on D2 as a
stream, from Redis Streams (a ``redis-server`` this script starts on a free port; every run
reads the same stream through a group of its own) and from a file (learner ``r`` takes
every N-th line), next to the one-process learner on the same source.

The D2 rows are written once as VW text and loaded into Redis (untimed). Each run's
``examples_per_s`` is the learners' own: examples learned over the seconds from their start
(group started, shards created) to the last example learned, so neither the processes'
start-up nor ``--stop-when-idle``'s final wait is counted.

    python benchmarks/bench_learn_workers.py --rows 1000000 --out benchmarks/results/learn-workers
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.bench_learn_vs_vw import write_data  # noqa: E402
from benchmarks import redis_server  # noqa: E402
from benchmarks.machine import facts  # noqa: E402


def fill(port: int, path: str, stream: str = "d2") -> int:
    import redis

    client = redis.Redis(port=port)
    n = 0
    with open(path, "rb") as f:
        pipe = client.pipeline(transaction=False)
        for line in f:
            pipe.xadd(stream, {"data": line.rstrip(b"\n")})
            n += 1
            if n % 10_000 == 0:
                pipe.execute()
        pipe.execute()
    return n


def run(source: str, bits: int, folder: str, workers: int | None, batch_size: int) -> dict:
    from shardlearn import OnlineLogisticRegression
    from shardlearn.online.learn import learn
    from shardlearn.online.learn_group import learn_group

    model = os.path.join(folder, "model")
    shutil.rmtree(model, ignore_errors=True)
    idle = 1.0 if source.startswith("redis://") else None
    t = time.perf_counter()
    if workers is None:
        out = learn(source, OnlineLogisticRegression(hash_bits=bits), fmt="vw", model_dir=model, stop_when_idle=idle)
    else:
        out = learn_group(source, OnlineLogisticRegression(hash_bits=bits), workers=workers, batch_size=batch_size,
                          fmt="vw", model_dir=model, stop_when_idle=idle)
    wall = time.perf_counter() - t
    shutil.rmtree(model, ignore_errors=True)
    return {"examples": out["examples"], "examples_s": out["examples_per_s"], "wall_s": wall,
            "progressive_logloss": out["progressive_logloss"], "auc": out["auc"],
            "per_worker": [w["examples"] for w in out.get("per_worker", [])]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch-sizes", default="1024,4096", help="for 2 learners (1 learner: the first)")
    ap.add_argument("--out", default="benchmarks/results/learn-workers")
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        path, n, bits = write_data("D2", folder, args.rows)
        try:
            server, port = redis_server.start(folder)
        except FileNotFoundError as e:
            sys.exit(str(e))
        try:
            loaded = fill(port, path)
            sizes = [int(b) for b in args.batch_sizes.split(",")]
            runs = [(kind, workers, b) for kind in ("file", "redis")
                    for workers, b in [(None, None), (1, sizes[0])] + [(2, b) for b in sizes]]
            warm = os.path.join(folder, "warm.vw")  # numba's compiled parser and kernel loaded first
            with open(path, "rb") as f, open(warm, "wb") as w:
                w.write(b"".join(f.readline() for _ in range(100)))
            run(warm, bits, folder, None, None)
            for i, (kind, workers, batch) in enumerate(runs):
                source = path if kind == "file" else f"redis://127.0.0.1:{port}/d2?group=run{i}&consumer=c"
                row = run(source, bits, folder, workers, batch)
                row.update(source=kind, learners="one process" if workers is None else f"{workers} over the shards",
                           batch_size=batch, rows=n, loaded=loaded)
                results.append(row)
                print(row, flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    machine = facts()
    base = {r["source"]: r["examples_s"] for r in results if r["learners"] == "one process"}
    lines = ["# Several stream learners over the parameter server: D2 as a stream", "",
             f"Machine: {machine}", "",
             f"D2, {n:,} rows as VW text, 2^{bits} hashed columns, one pass, the normalized rule. examples/s: the "
             "learners' own (start-up and the final idle wait excluded); wall: the whole call, processes started "
             "included.", "",
             "| source | learners | --batch-size | examples/s | vs one process | wall s | progressive log-loss | AUC "
             "| per learner |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['source']} | {r['learners']} | {r['batch_size'] or '-'} | {r['examples_s']:,.0f} | "
              f"{r['examples_s'] / base[r['source']]:.2f}x "
              f"| {r['wall_s']:.1f} | {r['progressive_logloss']:.5f} | {r['auc']:.4f} | "
              f"{', '.join(f'{e:,}' for e in r['per_worker']) or '-'} |" for r in results]
    os.makedirs(args.out, exist_ok=True)
    save(args.out, "learn-workers", results, machine, lines)


if __name__ == "__main__":
    main()
