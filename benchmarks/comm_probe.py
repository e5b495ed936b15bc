"""Seconds per collective of a torchrun group, for the cost model (``benchmarks/cost_model.py``):
run on every host by ``torchrun ... benchmarks/comm_probe.py OUT.json``; every rank joins as
shardlearn's workers do (``launch.join_from_env``: bound to the interface that routes to the
master), times ``allreduce`` (float64), ``allgather`` and ``alltoall`` (uint8 payloads: ``n``
bytes a rank in all, ``n / p`` to each) of each size, the
median of ``REPS`` calls after one warm-up, and the bytes rank 0's sockets sent per call
(``wire_OP``: TCP_INFO, gloo's framing included); rank 0 writes ``{op: {bytes: seconds}}``.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZES = [1 << k for k in range(10, 26, 3)]  # 1 KB .. 32 MB
REPS = 5


def probe(comm) -> dict:
    from shardlearn.comm.wire import tcp_bytes

    out = {"world_size": comm.size, "allreduce": {}, "allgather": {}, "alltoall": {}}
    p = comm.size
    for nbytes in SIZES:
        for op, make in (("allreduce", lambda n: np.ones(n // 8)), ("allgather", lambda n: np.ones(n, np.uint8)),
                         ("alltoall", lambda n: np.ones((p, n // p), np.uint8))):
            x = make(nbytes)
            call = {"allreduce": comm.allreduce, "allgather": comm.allgather,
                    "alltoall": lambda a: comm.alltoall(list(a))}[op]
            call(x.copy())
            secs, wire = [], 0
            for _ in range(REPS):
                comm.barrier()
                before = tcp_bytes()
                t = time.perf_counter()
                call(x.copy())
                secs.append(time.perf_counter() - t)
                time.sleep(0.05)  # the last segments acknowledged (delayed ACKs wait up to 40 ms)
                wire += tcp_bytes()[0] - before[0]
            out[op][nbytes] = float(np.median(secs))
            out.setdefault(f"wire_{op}", {})[nbytes] = wire / REPS  # bytes this rank's sockets sent per call
    return out


def main() -> None:
    from shardlearn.runtime import launch

    comm = launch.join_from_env()
    try:
        res, rank = probe(comm), comm.rank
    finally:
        launch.leave()
    if rank == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(res, f)


if __name__ == "__main__":
    main()
