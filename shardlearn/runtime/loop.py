"""One worker's training loop, whoever runs it (the caller's process, a local
worker, a torchrun rank): preconditioner, active columns, checkpointer, then the
strategy over the worker's rows, agreeing with the others through ``comm``.

>>> import numpy as np
>>> from shardlearn import models
>>> from shardlearn.runtime.config import TrainConfig
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([1.0, 3.0, 5.0, 7.0])
>>> r = train_local(models.get("linear"), X, y, None, TrainConfig(alpha=0.0, tol=1e-10), show=False)
>>> round(float(r.params["w"][0]), 6), round(float(r.params["b"]), 6)
(2.0, 1.0)
"""
from __future__ import annotations

import os
import time
from contextlib import nullcontext
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from shardlearn import optim
from shardlearn.comm import compressed
from shardlearn.core.errors import ConfigError
from shardlearn.runtime import active as columns_in_use, agree
from shardlearn.runtime.checkpoint import Checkpointer
from shardlearn.runtime.config import TrainConfig, resume_fingerprint
from shardlearn.runtime.progress import RowCounter, StepLog
from shardlearn.runtime.result import FitResult
from shardlearn.optim.scaling import where_present
from shardlearn.strategies import STRATEGIES, online, precond
from shardlearn.strategies.objective import l1_weights
from shardlearn.strategies.precond import Affine


class TrainState(NamedTuple):
    """What ``partial_fit`` needs to continue: scaled parameters, preconditioner,
    optimizer state and the number of epochs done."""

    theta: dict
    affine: Affine
    opt_state: Any
    epoch: int
    label_scale: float | None = None  # the first call's (``runtime/label_scale.py``): every epoch steps alike


def _affine(model, X, sample_weight, cfg: TrainConfig, comm=None):
    """The preconditioner agreed over workers, and this worker's share of the total weight.
    Full-batch strategies centre and scale by the variance; stochastic ones scale by the RMS
    where a feature is present (``optim.scaling.where_present``), as the parameter-server shards do."""
    d = X.shape[1]
    if cfg.per_example:  # raw features: the normalized rule is what makes their scales irrelevant
        return precond.identity(d), 0.0
    if cfg.stochastic:  # at most one pass (a streamed shard is read once here, or not at all)
        total = local_total = float(X.shape[0] if sample_weight is None else np.sum(sample_weight))
        if not cfg.precondition:
            return precond.identity(d), 0.0  # the share is for full-batch strategies only
        s2, count = precond.presence_moments(X, sample_weight) if X.shape[0] else (np.zeros(d), np.zeros(d))
        vec, total = agree.moments(comm, [s2, count], total, coarse=cfg.codec is not None)
        s2, count = vec[:d], vec[d:]
        scale = where_present(s2, count, model.curvature, cfg.alpha * (1.0 - cfg.l1_ratio))
        return Affine(np.zeros(d), scale), (local_total / total if total > 0 else 0.0)
    s1, s2, total = precond.moments(X, sample_weight) if X.shape[0] else (np.zeros(d), np.zeros(d), 0.0)
    local_total = total
    vec, total = agree.moments(comm, [s1, s2], total, coarse=cfg.codec is not None,
                               fragile=precond.cancelled if cfg.fit_intercept else None)
    s1, s2 = vec[:d], vec[d:]
    affine = precond.from_moments(s1, s2, total, curvature=model.curvature, ridge=cfg.alpha * (1.0 - cfg.l1_ratio),
                                  center=cfg.fit_intercept) if cfg.precondition else precond.identity(d)
    return affine, (local_total / total if total > 0 else 0.0)


def train_local(model, X, y, sample_weight, cfg: TrainConfig, n_outputs: int = 1, state: TrainState | None = None,
                epochs: int | None = None, callback=None, comm=None, progress=None, show=None, compact=True,
                report: dict | None = None, owned: bool = False):
    """One worker's part: its rows ``X``, and ``comm`` to agree with the others (None: alone).
    ``progress(record)`` receives each step's metrics; ``show`` the progress bar (None: on a terminal);
    ``compact``: train on the active columns of sparse data only (not for continued sgd runs);
    ``report`` (a dict) receives ``resumed_from`` (checkpoint step) and ``resumed_at`` (epoch seconds);
    ``owned``: ``X`` is this fit's own copy of the rows, compacted in place (``runtime.active.compact``).
    Returns a ``FitResult`` (params in the original space, iterations, this worker's step log,
    and the state ``partial_fit`` continues from)."""
    active = columns_in_use.columns(X, comm) if compact and state is None else None
    if active is not None:
        width, X = X.shape[1], columns_in_use.compact(X, active, owned)
        user_cb = callback
        callback = None if user_cb is None else (lambda p, it: user_cb(_scatter(p, active, width), it))
    result = _train_local_logged(model, X, y, sample_weight, cfg, n_outputs, state, epochs, callback, comm, progress,
                                 show, report, active)
    if active is not None:
        result.params, result.state = _scatter(result.params, active, width), None
    return result


def _scatter(params, active, width):
    return {"w": columns_in_use.scatter(params["w"], active, width), "b": params["b"]}


def _train_local_logged(model, X, y, sample_weight, cfg, n_outputs, state, epochs, callback, comm, progress, show,
                        report=None, active=None):
    counter = RowCounter(model)  # the per-example kernel learns outside loss_and_grad: its steps are timed whole
    log = StepLog(comm, total=cfg.max_iter if epochs is None else epochs, counter=None if cfg.per_example else counter,
                  show=show, sink=progress, outside=cfg.per_example)
    try:
        ckpt, resume = checkpointer_for(counter.model, X, cfg, comm, log, report, active)
        params, n_iter, new_state = _train_local(counter.model, X, y, sample_weight, cfg, n_outputs, state, epochs,
                                                 callback, comm, log, ckpt, resume)
    finally:
        log.close()
    return FitResult(params, int(n_iter), steps=log.records, state=new_state)


def checkpointer_for(model, X, cfg: TrainConfig, comm, log: StepLog, report, active=None):
    """The run's checkpointer (None without a directory) and, with ``cfg.resume``, this rank's
    arrays of the newest valid checkpoint (the metrics before it go back into ``log``).
    ``active``: the columns ``X`` was narrowed to (``runtime.active``), or None."""
    if not cfg.checkpoint_dir:
        return None, None
    fingerprint = dict({"model": model.name, "features": int(X.shape[1])}, **resume_fingerprint(cfg))
    if active is not None:  # the same width on other data would put every weight at another column
        fingerprint["columns"] = columns_in_use.digest(active)
    if cfg.plan == "average":  # each worker solves its own shard to the end: its own checkpoints, no collective
        rank, size = (comm.rank, comm.size) if comm is not None else (0, 1)
        fingerprint.update(rows=int(X.shape[0]), workers=size)
        ckpt = Checkpointer(os.path.join(cfg.checkpoint_dir, f"worker-{rank}"), cfg.checkpoint_every, None,
                            fingerprint)
    else:
        fingerprint["rows"] = agree.n_rows(comm, X.shape[0])
        ckpt = Checkpointer(cfg.checkpoint_dir, cfg.checkpoint_every, comm, fingerprint)
    ckpt.extra = lambda: {"steps": log.records}
    if not cfg.resume:
        ckpt.clear()
        return ckpt, None
    loaded = ckpt.load()
    step, arrays, meta = loaded if loaded is not None else (0, None, {})
    log.records[:0] = meta.get("steps", [])
    if report is not None:
        report.update(resumed_from=int(step), resumed_at=time.time())
    return ckpt, arrays


def _on_device(X, cfg, comm):
    """The rows the full-batch pass reads: on a torch device (``kernels/device.py``) when the job
    names one or a CUDA device is present and the rows are dense in memory, else as they are."""
    if sp.issparse(X) or hasattr(X, "blocks") or not hasattr(X, "dtype"):
        if cfg.device is not None:
            raise ConfigError(f"device={cfg.device!r} runs dense rows held in memory; these are "
                              f"{'sparse' if sp.issparse(X) else 'streamed'}")
        return X
    from shardlearn.kernels import device

    name = device.resolve(cfg.device, comm.rank if comm is not None else 0)
    return X if name is None else device.DeviceRows(X, name)


def _train_local(model, X, y, sample_weight, cfg, n_outputs, state, epochs, callback, comm, log, ckpt=None,
                 resume=None):
    if state is None:
        affine, share = _affine(model, X, sample_weight, cfg, comm)
        theta = precond.to_scaled(model.init(X.shape[1], n_outputs), affine)
        opt_state, epoch = None, 0
    else:
        theta, affine, opt_state, epoch = state.theta, state.affine, state.opt_state, state.epoch
        share = 1.0
    rows_per_pass = agree.n_rows(comm, X.shape[0])

    def cb(th, it, loss, examples=None):  # full-batch strategies use every row once per pass
        log.step(it, loss, rows_per_pass if examples is None else examples)
        if callback is not None:
            callback(precond.to_original(th, affine), it)

    comm = compressed.wrap(comm, cfg.compression, cfg.error_feedback, cfg.random_state)
    common = dict(theta0=theta, affine=affine, alpha=cfg.alpha, l1_ratio=cfg.l1_ratio,
                  fit_intercept=cfg.fit_intercept, callback=cb, comm=comm)
    plan = cfg.plan
    common.update(checkpoint=ckpt, resume=resume)
    most = X.shape[0]  # a coarse codec's averaging window follows the largest worker's rows, alike on all
    if plan == "local_sgd" and cfg.coarse_codec and cfg.sync_every is None:
        most = agree.most_rows(comm, most)
    if cfg.per_example:
        anneal = (online.anneal_span(comm, X, sample_weight, cfg.max_iter, merged=plan == "bsp")
                  if cfg.anneals(epochs) else None)
        size = comm.size if comm is not None else 1
        res = online.fit(model, X, y, sample_weight, rule=cfg.optimizer,
                         lr=cfg.base_lr(epochs, averaged=size if plan == "local_sgd" else 1),
                         power_t=cfg.power_t, opt_state=opt_state, anneal=anneal,
                         epochs=cfg.max_iter if epochs is None else epochs, start_epoch=epoch, shuffle=cfg.shuffle,
                         seed=cfg.random_state, tol=cfg.tol,
                         sync_rows=cfg.step_rows(workers=size) if plan == "bsp" else cfg.average_rows(most),
                         sync="changes" if plan == "bsp" else "average",
                         **{k: v for k, v in common.items() if k != "affine"})
    elif cfg.stochastic or state is not None:
        opt = optim.make(cfg.optimizer, cfg.lr(), l1=l1_weights(theta, affine, cfg.alpha, cfg.l1_ratio))
        sync_every = cfg.average_steps(most) if plan == "local_sgd" else cfg.sync_every or 1
        res = STRATEGIES["bsp"](model, X, y, sample_weight, optimizer=opt, opt_state=opt_state,
                                batch_size=cfg.batch_size, epochs=cfg.max_iter if epochs is None else epochs,
                                start_epoch=epoch, shuffle=cfg.shuffle, seed=cfg.random_state, tol=cfg.tol,
                                sync="params" if plan == "local_sgd" else "gradients", sync_every=sync_every, **common)
    else:
        rows = _on_device(X, cfg, comm)
        device = getattr(rows, "device", None)
        with comm.on_device(str(device)) if device is not None and hasattr(comm, "on_device") else nullcontext():
            res = STRATEGIES[plan](model, rows, y, sample_weight, max_iter=cfg.max_iter,
                                   tol=1e-6 if cfg.tol is None else cfg.tol, share=share, **common)
    new_state = TrainState(res.theta, affine, res.state, epoch + res.n_iter, cfg.label_scale)
    return precond.to_original(res.theta, affine), res.n_iter, new_state
