"""Jobs only benchmarks send to the local worker group (``group.run("worker_jobs:NAME")``;
the workers see the benchmark script's folder on their import path)."""
import time

import numpy as np
import scipy.sparse as sp

from shardlearn import models
from shardlearn.data import partition as partitioners
from shardlearn.runtime.spill import open_spec


def time_passes(comm, *, model: str, spill: dict, passes: int = 5, progress=None):
    """Seconds per loss-and-gradient pass over this worker's contiguous shard (``model="read"``:
    a sum of its values, what reading the shard from memory costs)."""
    X, y, _ = open_spec(spill)
    rows = partitioners.contiguous(X.shape[0], comm.size, comm.rank)
    Xs, ys = X[rows], np.asarray(y[rows])
    if model == "read":
        return _time(comm, lambda: (Xs.data if sp.issparse(Xs) else Xs).sum(), passes, rows)
    m = models.get(model)
    params = m.init(X.shape[1])
    return _time(comm, lambda: m.loss_and_grad(params, Xs, ys), passes, rows)


def _time(comm, step, passes: int, rows) -> dict:
    step()  # warm up
    comm.barrier()
    t = time.perf_counter()
    for _ in range(passes):
        step()
    own = (time.perf_counter() - t) / passes  # this worker's passes, before it waits for the other
    comm.barrier()
    return {"seconds_per_pass": (time.perf_counter() - t) / passes, "own_seconds_per_pass": own, "rows": int(len(rows))}


