"""Jobs only benchmarks send to the local worker group (``group.run("worker_jobs:NAME")``;
the workers see the benchmark script's folder on their import path)."""
import time

import numpy as np

from shardlearn import models
from shardlearn.data import partition as partitioners
from shardlearn.runtime.spill import open_spec


def time_passes(comm, *, model: str, spill: dict, passes: int = 5, progress=None):
    """Seconds per loss-and-gradient pass over this worker's contiguous shard."""
    X, y, _ = open_spec(spill)
    rows = partitioners.contiguous(X.shape[0], comm.size, comm.rank)
    Xs, ys = X[rows], np.asarray(y[rows])
    m = models.get(model)
    params = m.init(X.shape[1])
    m.loss_and_grad(params, Xs, ys)  # warm up
    comm.barrier()
    t = time.perf_counter()
    for _ in range(passes):
        m.loss_and_grad(params, Xs, ys)
    comm.barrier()
    return {"seconds_per_pass": (time.perf_counter() - t) / passes, "rows": int(len(rows))}
