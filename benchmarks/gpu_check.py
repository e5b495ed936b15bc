"""The GPU check (issue 20): D1 to 1.01 x L* with 1 and N GPUs, and the allreduce bandwidth
between them, in well under 5 minutes. Run on a machine with CUDA GPUs:

    bash benchmarks/gpu_check.sh            # writes benchmarks/results/gpu/gpu.md and gpu.jsonl

L* is the held-out log-loss of a tight host fit (numpy, L-BFGS to tol 1e-10) at the same
alpha; each GPU run is LogisticRegression(device="cuda", workers=k) with max_iter raised
until its held-out log-loss is within 1% of L* (the time of the first fit that gets there).
The bandwidth is NCCL's allreduce of 64 MB float32 buffers between k processes (bus
bandwidth as nccl-tests defines it: 2 (k - 1) / k x bytes / second).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.machine import facts  # noqa: E402


def held_out(est, X, y) -> float:
    from sklearn.metrics import log_loss

    return float(log_loss(y, est.predict_proba(X)[:, 1]))


def to_target(X, y, Xt, yt, target, **kw) -> dict:
    from shardlearn import LogisticRegression

    for max_iter in (5, 10, 20, 40, 80, 160, 320):
        t = time.perf_counter()
        est = LogisticRegression(alpha=1e-6, max_iter=max_iter, tol=None, **kw).fit(X, y)
        secs = time.perf_counter() - t
        loss = held_out(est, Xt, yt)
        if loss <= target:
            return {"max_iter": max_iter, "seconds": secs, "held_out": loss}
    return {"max_iter": None, "seconds": None, "held_out": loss}


def bandwidth_job(comm, *, progress=None, cfg=None, mbytes=64, reps=10):
    """A worker job: NCCL allreduce of ``mbytes`` MB on this rank's GPU, median seconds."""
    import torch
    import torch.distributed as dist

    device = torch.device(f"cuda:{comm.rank % torch.cuda.device_count()}")
    with comm.on_device(str(device)):
        x = np.ones(mbytes * (1 << 20) // 4, dtype=np.float32)
        comm.allreduce(x)  # the NCCL group's first use
        secs = []
        for _ in range(reps):
            torch.cuda.synchronize()
            t = time.perf_counter()
            comm.allreduce(x)
            secs.append(time.perf_counter() - t)
    del dist
    return {"params": {}, "n_iter": 0, "steps": [], "report": {"seconds": float(np.median(secs))}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--device", default="cuda", help="cuda; cpu runs the same script without a GPU (a smoke test)")
    args = ap.parse_args()
    import torch

    from shardlearn import LogisticRegression
    from shardlearn.data.synthetic import make_d1

    gpus = torch.cuda.device_count() if args.device == "cuda" else 1
    if gpus == 0:
        sys.exit("gpu_check: torch sees no CUDA device here")
    X, y = make_d1(args.rows)
    Xt, yt = make_d1(max(args.rows // 10, 1000), split="test")
    best = LogisticRegression(alpha=1e-6, tol=1e-10, max_iter=2000).fit(X, y)
    target = 1.01 * held_out(best, Xt, yt)
    rows = []
    for k in sorted({1, gpus}):
        LogisticRegression(alpha=1e-6, max_iter=2, device=args.device, workers=k).fit(X[:10000], y[:10000])  # warm
        rows.append(dict(to_target(X, y, Xt, yt, target, device=args.device, workers=k), gpus=k))
    host = dict(to_target(X, y, Xt, yt, target, workers=1), gpus=0)
    if gpus > 1 and args.device == "cuda":
        from shardlearn.runtime.config import TrainConfig
        from shardlearn.runtime.distributed import run_job

        res = run_job(TrainConfig(workers=gpus), "benchmarks.gpu_check:bandwidth_job")
        secs = max(r["seconds"] for r in res.reports)
        bus = 2 * (gpus - 1) / gpus * 64 * (1 << 20) / secs / 1e9
        rows.append({"allreduce_64MB_seconds": secs, "bus_bandwidth_GBps": bus, "gpus": gpus})
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "no GPU (device cpu)"
    machine = dict(facts(), gpu=name, gpus=gpus, torch=torch.__version__)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "gpu.jsonl"), "w") as f:
        for r in rows + [host]:
            f.write(json.dumps(dict(r, machine=machine, target=target)) + "\n")
    lines = ["# GPU check (benchmarks/gpu_check.py)", "", f"D1, {args.rows:,} rows; target 1.01 x L* = {target:.5f}; "
             f"{machine['gpu']} x {gpus}", "", "| run | max_iter | seconds | held-out log-loss |", "|---|---|---|---|"]
    for r in rows + [host]:
        if "max_iter" in r:
            name = f"{r['gpus']} x {args.device}" if r["gpus"] else "host numpy, 1 process"
            secs = "not reached" if r["seconds"] is None else f"{r['seconds']:.2f}"
            lines.append(f"| {name} | {r['max_iter']} | {secs} | {r['held_out']:.5f} |")
    for r in rows:
        if "bus_bandwidth_GBps" in r:
            lines += ["", f"NCCL allreduce of 64 MB over {r['gpus']} GPUs: {r['allreduce_64MB_seconds'] * 1e3:.2f} ms, "
                          f"bus bandwidth {r['bus_bandwidth_GBps']:.1f} GB/s"]
    with open(os.path.join(args.out, "gpu.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
