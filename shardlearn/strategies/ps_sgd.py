"""Mini-batch SGD over the parameter server, with a choice of consistency:

- ``bsp`` (``staleness=0``, pushes tagged with the clock): before step ``t`` a
  worker waits until every worker has finished step ``t-1``; the shards hold a
  clock's pushes until all workers' have arrived and apply their sum once, so
  every worker reads the same parameters and the optimizer steps once per clock
  on the global batch gradient (each push scaled by the worker's share of the
  step's rows): the same algorithm as allreduce ``bsp``;
- ``ssp`` (``staleness=s``): a worker at clock ``t`` waits only while the slowest
  worker is below ``t - s`` (Ho et al., NIPS 2013);
- ``asp`` (``staleness=None``): nobody waits (Dean et al., "Large Scale Distributed
  Deep Networks", NIPS 2012; Li et al., OSDI 2014).

A step pulls only the keys its batch touches (the batch's columns and the
intercept key), computes the batch gradient on those columns, and pushes it;
the shards apply the optimizer (AdaGrad, FTRL, ...) per coordinate. A worker's
memory therefore grows with the keys a batch touches, not with the model.

>>> # runs on a worker group; see tests/test_ps.py
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from shardlearn.strategies.sgd import epoch_order


def batch_columns(Xb):
    """``(keys, X with those columns only)``: the columns a batch touches, compacted."""
    if sp.issparse(Xb):
        keys, inv = np.unique(Xb.indices, return_inverse=True)
        return keys.astype(np.int64), sp.csr_matrix((Xb.data, inv.astype(np.int32), Xb.indptr),
                                                    shape=(Xb.shape[0], keys.size))
    return np.arange(Xb.shape[1], dtype=np.int64), Xb


def fit(model, X, y, sample_weight=None, *, client, comm, batch_size=256, epochs=1, seed=None, shuffle=True,
        staleness=None, share_rows=False, callback=None, slow_factor=1.0, on_step=None, checkpoint=None,
        resume=None):
    """This worker's part. ``staleness``: 0 (bsp), s (ssp) or None (asp). ``share_rows``: scale
    each push by this worker's share of the step's rows (bsp). ``slow_factor``: sleep so each
    step takes that many times its compute time (straggler experiments). ``on_step(t)`` runs
    after each clock (benchmarks take model snapshots there). ``checkpoint`` (``due(t)``,
    ``save(t, arrays)``; the caller's adapter also saves the shards at a consistent cut)
    receives this worker's cursor; ``resume`` (such arrays) continues from it.
    Returns ``(steps, clock_log)``: ``clock_log`` holds ``(t, slowest clock when allowed on)``."""
    n, d = X.shape
    y = np.asarray(y)
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    sizes = [int(v[0]) for v in comm.allgather(np.array([n], dtype=np.int64))]
    steps = max(-(-s // batch_size) for s in sizes)
    bias = np.array([d], dtype=np.int64)  # the intercept's key
    cur = {"epoch": 0, "step": 0, "t": 0, "total": 0.0, "seen": 0.0}
    if resume is not None:
        cur.update({k: resume[f"cursor/{k}"].item() for k in cur})
    log = []

    def save():
        checkpoint.save(cur["t"], {f"cursor/{k}": np.array(v) for k, v in cur.items()})

    while cur["epoch"] < epochs:
        epoch = cur["epoch"]
        order = epoch_order(n, epoch, seed, shuffle, comm.rank)
        while cur["step"] < steps:
            step, t = cur["step"], cur["t"]
            t0 = time.perf_counter()
            if staleness is not None:
                log.append((t, client.wait_min(t - staleness)))
            lo = step * batch_size
            rows = max(0, min(lo + batch_size, n) - lo)
            held = {"clock": t, "expect": comm.size} if share_rows else {}
            if rows:
                idx = slice(lo, lo + rows) if order is None else order[lo : lo + rows]
                keys, Xc = batch_columns(X[idx])
                keys = np.concatenate([keys, bias])
                vals = client.wait(client.pull(keys))
                loss, g = model.loss_and_grad({"w": vals[:-1], "b": np.asarray(vals[-1])}, Xc, y[idx],
                                              None if sw is None else sw[idx])
                scale = 1.0
                if share_rows:
                    step_rows = sum(max(0, min(lo + batch_size, s) - lo) for s in sizes)
                    scale = rows / step_rows
                client.wait(client.push(keys, scale * np.concatenate([np.ravel(g["w"]), np.ravel(g["b"])]),
                                        **held))
                cur["total"] += loss * rows
                cur["seen"] += rows
            elif share_rows:  # bsp: the shards wait for every worker's push of this clock
                client.wait(client.push(np.zeros(0, dtype=np.int64), np.zeros(0), **held))
            if slow_factor > 1.0:
                time.sleep((slow_factor - 1.0) * (time.perf_counter() - t0))
            client.tick()
            cur["t"], cur["step"] = t + 1, step + 1
            if on_step is not None:
                on_step(t + 1)
            if checkpoint is not None and cur["step"] < steps and checkpoint.due(t + 1):
                save()
        if callback is not None:
            callback(epoch + 1, cur["total"] / max(cur["seen"], 1.0), int(cur["seen"]))
        cur.update(epoch=epoch + 1, step=0, total=0.0, seen=0.0)
        if checkpoint is not None and (cur["epoch"] >= epochs or checkpoint.due(cur["t"])):
            save()
    return cur["t"], log
