"""Mini-batch SGD over the parameter server, with a choice of consistency:

- ``bsp`` (``staleness=0``, pushes tagged with the clock): before step ``t`` a
  worker waits until every worker has finished step ``t-1``; the shards hold a
  clock's pushes until all workers' have arrived and apply their sum once, so
  every worker reads the same parameters and the optimizer steps once per clock
  on the global batch gradient (each push scaled by the worker's share of the
  step's weight): the same algorithm as allreduce ``bsp``, penalties, intercept,
  sample weights and preconditioning included (the shards precondition with the
  second moments the workers pushed, ``push_moments``);
- ``ssp`` (``staleness=s``): a worker at clock ``t`` waits only while the slowest
  worker is below ``t - s`` (Ho et al., NIPS 2013);
- ``asp`` (``staleness=None``): nobody waits, and no clock is ticked (Dean et al., "Large Scale Distributed
  Deep Networks", NIPS 2012; Li et al., OSDI 2014).

A step pulls only the keys its batch touches (the batch's columns and the
intercept key), computes the batch gradient on those columns, and pushes it;
the shards apply the optimizer (AdaGrad, FTRL, ...) per coordinate. A worker's
memory therefore grows with the keys a batch touches, not with the model.

>>> # runs on a worker group; see tests/test_ps.py
"""
from __future__ import annotations


import numpy as np
import scipy.sparse as sp

from shardlearn.strategies import precond
from shardlearn.strategies.sgd import epoch_order


def batch_columns(Xb):
    """``(keys, X with those columns only)``: the columns a batch touches, compacted."""
    if sp.issparse(Xb):
        keys, inv = np.unique(Xb.indices, return_inverse=True)
        return keys.astype(np.int64), sp.csr_matrix((Xb.data, inv.astype(np.int32), Xb.indptr),
                                                    shape=(Xb.shape[0], keys.size))
    return np.arange(Xb.shape[1], dtype=np.int64), Xb


def push_moments(client, X, sample_weight=None) -> None:
    """Push this worker's weighted sums of ``x_j^2`` and of the rows where ``x_j != 0``, for
    the columns it holds (the shards' preconditioner, ``precond.where_present``). Only the
    touched keys travel."""
    n = X.shape[0]
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if sp.issparse(X):
        keys = np.asarray(X.indices, dtype=np.int64)
        data = np.asarray(X.data, dtype=np.float64)
        rw = np.repeat(sw, np.diff(X.indptr))
        sums, counts = data**2 * rw, (data != 0) * rw
    else:
        keys = np.arange(X.shape[1], dtype=np.int64)
        sums, counts = precond.presence_moments(X, sw)
    if keys.size:
        client.wait(client.push_stats(keys, sums, counts))


def _step_weights(n, sw, order, batch_size, steps):
    """This worker's weight (rows, or summed sample weights) in each step of an epoch."""
    w = np.ones(n) if sw is None else (sw if order is None else sw[order])
    out = np.zeros(steps)
    if n:
        out[: -(-n // batch_size)] = np.add.reduceat(w, np.arange(0, n, batch_size))
    return out


def fit(model, X, y, sample_weight=None, *, client, comm, batch_size=256, epochs=1, seed=None, shuffle=True,
        staleness=None, share_rows=False, fit_intercept=True, callback=None, on_step=None,
        checkpoint=None, resume=None, tol=None, n_iter_no_change=5, learn=None):
    """This worker's part. ``staleness``: 0 (bsp), s (ssp) or None (asp). ``share_rows``: scale
    each push by this worker's share of the step's weight, so the shards apply the global
    weighted batch gradient (bsp); otherwise a push is scaled by its batch's weight over the
    mean batch weight (1 without sample weights). ``fit_intercept=False``: the intercept's key
    is neither pulled nor pushed (it stays 0). ``on_step(t)`` runs
    after each clock (benchmarks take model snapshots there). ``checkpoint`` (``due(t)``,
    ``save(t, arrays)``; the caller's adapter also saves the shards at a consistent cut)
    receives this worker's cursor; ``resume`` (such arrays) continues from it. ``tol``: stop when
    the epoch's mean loss over all workers (agreed by one allreduce per epoch) improves by less
    than ``tol`` for ``n_iter_no_change`` epochs, as the allreduce strategies do. ``learn``
    (``strategies.ps_online.Learner``): each batch learned per example on the pulled kernel
    state, its change pushed, instead of one gradient step; returns ``(loss sum, push handle)``.
    A step's push is applied before the worker's next pull (it reads its own updates, so one
    worker is the one-process pass). Per example under ``asp`` and ``ssp`` (staleness >= 1) a
    batch's change rides with the next batch's pull (one round trip a step); under ``ssp``
    the clock of a step then ends when its change is applied, one step later, so the
    staleness bound holds as it is. A worker asks the clock table only when the slowest clock
    it last heard of does not let it on. ``X`` may be a streamed shard (``data.stream.Stream``, out of
    core; ``y`` then None): each step learns the stream's next batch, its labels with it.
    Under ``asp`` and ``ssp`` a fit warm-starts (Dean et al. 2012, "Large scale distributed deep
    networks": one replica first, then the others) wherever the workers met, at its start and
    (with ``tol``) after each epoch's allreduce: the others wait at a barrier until rank 0's
    first step is applied, so their first changes are not all learned from the same model and
    summed. Per example, where the first steps are the largest, two workers' first changes
    overshot together and swelled the adaptive sums the later steps divide by: ``shardlearn
    train --strategy asp`` on the 3-class table ended at up to 1.055 x the optimum's objective
    (binary: 1.08, 3 of 12 runs over 1.06), warm-started at most 1.0015 (binary 1.0026) in 12
    (``benchmarks/bench_warm_start.py``, ``benchmarks/results/warm-start``).
    Returns ``(steps, clock_log)``: ``clock_log`` holds ``(t, slowest clock when allowed on)``."""
    n, d = X.shape
    streamed = hasattr(X, "blocks")  # out of core (data.stream.Stream): its batches in stream order, labels with them
    y = None if streamed else np.asarray(y)
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    sizes = [int(v[0]) for v in comm.allgather(np.array([n], dtype=np.int64))]
    steps = max(-(-s // batch_size) for s in sizes)
    bias = np.array([d] if fit_intercept else [], dtype=np.int64)  # the intercept's key
    if sw is None:
        mean_weight = 1.0
    else:  # asp/ssp: a batch of average weight pushes its mean gradient as is
        tot = comm.allreduce(np.array([sw.sum(), float(n)]))
        mean_weight = float(tot[0] / max(tot[1], 1.0))
    cur = {"epoch": 0, "step": 0, "t": 0, "total": 0.0, "seen": 0.0, "rows": 0, "best": np.inf, "stall": 0,
           "stopped": 0}
    if resume is not None:
        cur.update({k: resume[f"cursor/{k}"].item() for k in cur})
        client.restore(resume)  # coded pushes: the per-key residuals and the rounding's step
    log = []

    alone = staleness != 0 and comm.size > 1  # asp, ssp: rank 0's first step after the workers met goes alone
    inflight = []  # the last step's tick, at most (ssp with a deferred change)
    fused = staleness != 0 and getattr(learn, "fuse", False)  # a change rides with the next pull
    owed = [0]  # ssp, fused: the tick of the clock whose change is still held back
    slowest = [-(1 << 62)]  # the slowest clock last heard of (a lower bound: clocks only grow)

    def settle():
        if hasattr(learn, "flush"):
            learn.flush(client)
        for h in inflight:
            client.wait(h)
        inflight.clear()
        if owed[0]:
            client.tick()
            owed[0] = 0

    def save():
        settle()
        checkpoint.save(cur["t"], dict({f"cursor/{k}": np.array(v) for k, v in cur.items()}, **client.arrays()))

    while cur["epoch"] < epochs and not cur["stopped"]:
        epoch = cur["epoch"]
        order = None if streamed else epoch_order(n, epoch, seed, shuffle, comm.rank)
        batches = _streamed(X, batch_size, [seed or 0, epoch, comm.rank] if shuffle else None, cur["step"]) \
            if streamed else None
        if share_rows:  # bsp: every worker's weight in every step of this epoch
            step_totals = np.sum(comm.allgather(_step_weights(n, sw, order, batch_size, steps)), axis=0)
        while cur["step"] < steps:
            step, t = cur["step"], cur["t"]
            # the workers met: the fit's start, or (with tol) the last epoch's end; every rank takes an epoch's step 0
            warm = alone and step == 0 and ((t == 0 and resume is None) or tol is not None)
            if warm and comm.rank != 0:
                comm.barrier()
            if staleness is not None:  # ask the clock table only when the last answer does not let us on
                if slowest[0] < t - staleness:
                    slowest[0] = client.wait_min(t - staleness)
                log.append((t, slowest[0]))
            held = {"clock": t, "expect": comm.size} if share_rows else {}
            Xs, ys = X, y  # the rows a step indexes: the shard's, or (streamed) the step's own batch
            if streamed:
                Xs, ys = next(batches, (None, None))
                idx = None if Xs is None else slice(0, Xs.shape[0])
            else:
                idx = _rows_of(step, steps, batch_size, n, order)
            rows = 0 if idx is None else idx.stop - idx.start if isinstance(idx, slice) else idx.size
            weight = 0.0 if idx is None else float(rows if sw is None else sw[idx].sum())
            pushed = None
            if rows and weight > 0 and learn is not None:
                loss_sum, pushed = learn(client, Xs, idx, ys[idx], None if sw is None else sw[idx], held,
                                         upcoming=None if streamed else _rows_of(step + 1, steps, batch_size, n, order))
            elif rows and weight > 0:
                keys, Xc = batch_columns(Xs[idx])
                keys = np.concatenate([keys, bias])
                vals = client.wait(client.pull(keys))
                b = vals[-1] if fit_intercept else 0.0
                loss, g = model.loss_and_grad({"w": vals[: keys.size - bias.size], "b": np.asarray(b)}, Xc, ys[idx],
                                              None if sw is None else sw[idx])
                grad = np.concatenate([np.ravel(g["w"])] + ([np.ravel(g["b"])] if fit_intercept else []))
                scale = weight / step_totals[step] if share_rows else weight / (rows * mean_weight)
                loss_sum, pushed = loss * weight, client.push(keys, scale * grad, **held)
            elif share_rows:  # bsp: the shards wait for every worker's push of this clock
                client.wait(client.push(np.zeros(0, dtype=np.int64), np.zeros(0), **held))
            if rows and weight > 0:
                cur["total"] += loss_sum
                cur["seen"] += weight
                cur["rows"] += rows
            if pushed is not None:  # applied before the next pull: a worker reads its own updates
                client.wait(pushed)
            held_back = fused and rows and weight > 0  # this step's change waits for the next pull
            if staleness is None:  # asp: nobody waits on clocks, so none is ticked (a round trip a step saved)
                pass
            elif held_back:  # ssp: the step before's change is applied now, so its clock ends now
                for h in inflight:
                    client.wait(h)
                inflight[:] = [client.tick(wait=False)] if owed[0] else []
                owed[0] = 1
            else:
                settle()
                client.tick()
            cur["t"], cur["step"] = t + 1, step + 1
            if warm and comm.rank == 0:  # its change applied (a fused one flushed), then the others go
                settle()
                comm.barrier()
            if on_step is not None:
                on_step(t + 1)
            if checkpoint is not None and cur["step"] < steps and checkpoint.due(t + 1):
                save()
        settle()
        mean = cur["total"] / max(cur["seen"], 1e-300)
        if tol is not None:  # every worker takes the same decision from the same mean
            total, seen = comm.allreduce(np.array([cur["total"], cur["seen"]]))
            mean = total / max(seen, 1e-300)
            cur["stall"] = cur["stall"] + 1 if mean > cur["best"] - tol else 0
            cur["best"] = min(cur["best"], mean)
            cur["stopped"] = int(cur["stall"] >= n_iter_no_change)
        if callback is not None:
            callback(epoch + 1, mean, int(cur["rows"]))
        cur.update(epoch=epoch + 1, step=0, total=0.0, seen=0.0, rows=0)
        if checkpoint is not None and (cur["epoch"] >= epochs or cur["stopped"] or checkpoint.due(cur["t"])):
            save()
    return cur["t"], log


def _streamed(stream, batch_size: int, order_seed, skip: int):
    """A streamed shard's ``(X, y)`` batches of ``batch_size`` rows for an epoch (rows permuted
    within each block with ``order_seed``, the out-of-core shuffle), from batch ``skip`` on: a
    run resumed mid-epoch reads past the steps it had taken."""
    for k, (Xb, yb) in enumerate(stream.batches(batch_size, order_seed)):
        if k >= skip:
            yield (Xb.tocsr() if sp.issparse(Xb) else Xb), np.asarray(yb, dtype=np.float64)


def _rows_of(step: int, steps: int, batch_size: int, n: int, order):
    """Step ``step``'s rows of this worker's ``n`` (a slice, or indices of ``order``); None
    past the epoch's last step or where the step has none."""
    lo = step * batch_size
    if step >= steps or lo >= n:
        return None
    return slice(lo, min(lo + batch_size, n)) if order is None else order[lo : lo + batch_size]
