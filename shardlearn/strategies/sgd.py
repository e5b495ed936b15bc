"""Stochastic gradient descent: one process, or data-parallel over a collective.

- one process (``comm=None``): per example (``batch_size=1``) or mini-batch,
  shuffled each epoch with a seed derived from ``(seed, epoch)`` so an epoch's
  order does not depend on how epochs were split across calls (Robbins & Monro,
  1951; Bottou, 2010);
- ``bsp`` (``sync="gradients"``): every worker takes a local batch, the batch
  gradients are averaged (weighted by rows) in one allreduce, and every worker
  applies the same optimizer step, so all replicas stay identical (synchronous
  data-parallel SGD, as in Dean et al., 2012 without the staleness);
- ``local_sgd`` (``sync="params"``): every worker steps on its own, and every
  ``sync_every`` steps the parameters are averaged, weighted by the rows each
  worker used (Stich, "Local SGD Converges Fast and Communicates Little", 2019);
  with ``sync_every=1`` and plain SGD it is exactly ``bsp``.

Workers agree on the number of steps per epoch (the largest shard's), and a worker
whose shard is used up contributes zero weight.

>>> import numpy as np
>>> from shardlearn import models, optim
>>> from shardlearn.strategies import precond
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 2)); y = X @ np.array([1.0, -2.0]) + 0.5
>>> m = models.get("linear"); a = precond.fit(X)
>>> r = fit(m, X, y, theta0=m.init(2), affine=a, optimizer=optim.sgd(0.05), batch_size=10, epochs=50, seed=0)
>>> np.round(precond.to_original(r.theta, a)["w"], 2).tolist()
[1.0, -2.0]
"""
from __future__ import annotations

import numpy as np

from shardlearn.comm.compressed import Compressed
from shardlearn.core.tree import pack, pack_state, unpack, unpack_state
from shardlearn.optim.base import apply_updates
from shardlearn.strategies import objective
from shardlearn.strategies.result import Result


def epoch_order(n: int, epoch: int, seed: int | None, shuffle: bool, rank: int = 0) -> np.ndarray | None:
    """Row order of one epoch on one worker (None: natural order)."""
    if not shuffle:
        return None
    return np.random.default_rng([0 if seed is None else int(seed), int(epoch), int(rank)]).permutation(n)


def _epoch_batches(X, y, sw, batch_size, epoch, seed, shuffle, rank, start_step):
    """``(X, y, sample_weight, rows)`` of each step of one epoch from ``start_step`` on (then
    empty steps): rows of the epoch's order for arrays; for a streamed shard
    (``data.stream.Stream``) batches in stream order, rows permuted within each block."""
    if hasattr(X, "batches"):
        it = X.batches(batch_size, [0 if seed is None else int(seed), int(epoch), int(rank)] if shuffle else None)
        for _ in range(start_step):  # a resumed epoch: the same batches are skipped
            next(it, None)
        for Xb, yb in it:
            yield Xb, yb, None, Xb.shape[0]
        while True:
            yield None, None, None, 0
    n = X.shape[0]
    order = epoch_order(n, epoch, seed, shuffle, rank)
    step = start_step
    while True:
        lo = step * batch_size
        idx = slice(lo, min(lo + batch_size, n)) if order is None else order[lo : lo + batch_size]
        rows = max(0, min(lo + batch_size, n) - lo)
        if rows:
            yield X[idx], y[idx], None if sw is None else sw[idx], rows
        else:
            yield None, None, None, 0
        step += 1


def _average_params(comm, theta, weight, anchor):
    """The workers' parameters averaged, weighted by the rows each used since the last average;
    over a compressed collective the changes since then (from ``anchor``, the last average,
    the same on every worker) travel, not the parameters."""
    total = float(comm.allreduce(np.array([weight], dtype=np.float64))[0])
    if total <= 0:
        return theta
    if isinstance(comm, Compressed):
        _, avg = objective.allreduce_mean(comm, 0.0, {k: theta[k] - anchor[k] for k in theta}, weight / total)
        return {k: anchor[k] + avg[k] for k in theta}
    _, avg = objective.allreduce_mean(comm, 0.0, theta, weight / total)
    return avg


def fit(model, X, y, sample_weight=None, *, theta0, affine, optimizer, opt_state=None, alpha=0.0, l1_ratio=0.0,
        fit_intercept=True, batch_size=32, epochs=1, start_epoch=0, shuffle=True, seed=None, tol=None,
        n_iter_no_change=5, callback=None, comm=None, sync="gradients", sync_every=1, checkpoint=None,
        resume=None) -> Result:
    """Run ``epochs`` epochs from epoch number ``start_epoch``; stops early when the
    epoch's mean loss improves by less than ``tol`` for ``n_iter_no_change`` epochs.

    ``callback(theta, epoch, mean_loss, examples)`` runs after each epoch; ``examples`` is the
    number of rows that contributed to it, over all workers. ``checkpoint`` saves the
    parameters, optimizer state and the cursor (epoch, next step, the epoch's running sums)
    at step boundaries when due; ``resume`` continues from such a checkpoint, so every row
    of the interrupted epoch is used exactly once. The shuffling order is a function of
    ``(seed, epoch, rank)`` and needs no saving."""
    n = X.shape[0]
    y = np.asarray(y)
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    theta = {k: np.array(v, dtype=np.float64) for k, v in theta0.items()}
    state = optimizer.init(theta) if opt_state is None else opt_state
    distributed = comm is not None and comm.size > 1
    rank = comm.rank if distributed else 0
    steps = -(-n // batch_size)
    if distributed:
        steps = int(comm.allreduce(np.array([steps], dtype=np.float64), op="max")[0])
    end_epoch = start_epoch + epochs
    cur = {"epoch": start_epoch, "step": 0, "total": 0.0, "seen": 0.0, "rows": 0, "since_sync": 0.0,
           "best": np.inf, "stall": 0, "done": 0, "stopped": 0}
    anchor = theta  # local_sgd over a compressed collective: the parameters at the last average
    # bsp over a compressed collective: a step's loss only feeds its epoch's mean, so it stays on the
    # worker and the epoch's sums travel once (every step would add an exact 8-byte allreduce to a
    # gradient a codec made a few dozen bytes)
    local_loss = distributed and sync == "gradients" and isinstance(comm, Compressed)
    # and without sample weights a step's total weight is its rows, known from every shard's size:
    # no allreduce of it per step either (weights all one, as an estimator may hand them, are none)
    if local_loss and sw is not None and not comm.allreduce(np.array([float(np.any(sw != 1.0))]), op="max")[0]:
        sw = None
    sizes = np.array([int(a[0]) for a in comm.allgather(np.array([n], dtype=np.int64))]) \
        if local_loss and sw is None else None
    if resume is not None:
        theta = unpack("theta", resume)
        state = unpack_state("opt", resume, state)
        cur.update({k: resume[f"cursor/{k}"].item() for k in cur})
        anchor = unpack("anchor", resume) if "anchor/" + next(iter(theta)) in resume else theta
        if isinstance(comm, Compressed):
            comm.restore(resume)

    def save():
        extra = comm.arrays() if isinstance(comm, Compressed) else {}
        if isinstance(comm, Compressed) and sync == "params":  # local SGD's last average: the next change's origin
            extra.update(pack("anchor", anchor))
        checkpoint.save(cur["epoch"] * steps + cur["step"],
                        dict(pack("theta", theta), **pack_state("opt", state), **extra,
                             **{f"cursor/{k}": np.array(v) for k, v in cur.items()}))

    while cur["epoch"] < end_epoch and not cur["stopped"]:
        epoch = cur["epoch"]
        batches = _epoch_batches(X, y, sw, batch_size, epoch, seed, shuffle, rank, cur["step"])
        while cur["step"] < steps:
            step = cur["step"]
            Xb, yb, swb, rows = next(batches)
            weight = float(rows if swb is None else swb.sum())
            if rows and weight > 0:
                loss, g = objective.smooth(model, theta, Xb, yb, swb, affine, alpha, l1_ratio, fit_intercept)
            else:
                loss, g = 0.0, {k: np.zeros_like(v) for k, v in theta.items()}
            cur["step"] = step + 1
            cur["rows"] += rows
            skip, counted = False, weight  # counted: the weight this worker adds to the epoch's loss sums
            if distributed and sync == "gradients":
                step_total = float(np.clip(sizes - step * batch_size, 0, batch_size).sum()) if sizes is not None \
                    else float(comm.allreduce(np.array([weight]))[0])
                skip = step_total <= 0
                if not skip and local_loss:  # the gradient alone travels; the loss is summed at the epoch's end
                    g = comm.sum_tree({k: np.asarray(v, dtype=np.float64) * (weight / step_total)
                                       for k, v in g.items()})
                    weight = step_total
                elif not skip:
                    loss, g = objective.allreduce_mean(comm, loss, g, weight / step_total)
                    weight = counted = step_total
            elif weight <= 0 and not distributed:
                skip = True
            if not skip:
                if weight > 0:
                    updates, state = optimizer.update(g, state, theta)
                    theta = apply_updates(theta, updates)
                cur["total"] += loss * counted
                cur["seen"] += counted
                cur["since_sync"] += weight
                if distributed and sync == "params" and (step + 1) % sync_every == 0:
                    theta, cur["since_sync"] = _average_params(comm, theta, cur["since_sync"], anchor), 0.0
                    anchor = theta
            if checkpoint is not None and cur["step"] < steps and checkpoint.due(epoch * steps + cur["step"]):
                save()
        if distributed and sync == "params" and steps % sync_every:
            theta, cur["since_sync"] = _average_params(comm, theta, cur["since_sync"], anchor), 0.0
            anchor = theta
        cur["done"] += 1
        mean_loss = cur["total"] / max(cur["seen"], 1e-300)
        examples = cur["rows"]
        if distributed and local_loss:  # the epoch's loss and rows in one allreduce
            total, seen, examples = comm.allreduce(np.array([cur["total"], cur["seen"], float(examples)]))
            mean_loss, examples = total / max(seen, 1e-300), int(examples)
        elif distributed:
            examples = int(comm.allreduce(np.array([float(examples)]))[0])
        if distributed and sync == "params":
            mean_loss = objective.allreduce_mean(comm, mean_loss, {}, 1.0 / comm.size)[0]
        if callback is not None:
            callback(theta, epoch + 1, mean_loss, examples)
        if tol is not None:
            cur["stall"] = cur["stall"] + 1 if mean_loss > cur["best"] - tol else 0
            cur["best"] = min(cur["best"], mean_loss)
            cur["stopped"] = int(cur["stall"] >= n_iter_no_change)
        cur.update(epoch=epoch + 1, step=0, total=0.0, seen=0.0, rows=0)
        if checkpoint is not None and (cur["epoch"] >= end_epoch or cur["stopped"] or checkpoint.due(cur["epoch"] * steps)):
            save()
    return Result(theta, cur["done"], bool(cur["stopped"]), float("nan"), state)
