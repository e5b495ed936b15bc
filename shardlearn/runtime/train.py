"""One entry point for training: picks the strategy, owns the preconditioner and
the continuation state, and maps parameters back to the original space.

>>> import numpy as np
>>> from shardlearn import models
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([1.0, 3.0, 5.0, 7.0])
>>> params, n_iter, state = train(models.get("linear"), X, y, None, TrainConfig(alpha=0.0, tol=1e-10))
>>> round(float(params["w"][0]), 6), round(float(params["b"]), 6)
(2.0, 1.0)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from shardlearn import optim
from shardlearn.core.errors import ConfigError
from shardlearn.data.partition import PARTITIONERS
from shardlearn.strategies import STRATEGIES, precond
from shardlearn.strategies.objective import l1_weights
from shardlearn.runtime.checkpoint import Checkpointer, parse_every
from shardlearn.runtime.progress import RowCounter, StepLog
from shardlearn.strategies.precond import Affine

LAST_STEPS: list = []  # per-step metrics of the latest one-process (or this worker's) fit

DEFAULT_LEARNING_RATE = {"sgd": 0.05, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.1, "adam": 0.01, "ftrl": 0.5}
SOLVER_STRATEGY = {"lbfgs": "lbfgs", "gd": "gd", "sgd": "bsp"}
ALL_STRATEGIES = list(STRATEGIES) + ["ssp", "asp", "hogwild"]  # the last three run on the worker group only


@dataclass(frozen=True)
class TrainConfig:
    solver: str = "lbfgs"
    alpha: float = 0.0
    l1_ratio: float = 0.0
    fit_intercept: bool = True
    optimizer: str = "adagrad"
    learning_rate: float | None = None
    schedule: str = "constant"
    batch_size: int = 256
    max_iter: int = 300
    tol: float | None = 1e-6
    shuffle: bool = True
    random_state: int | None = None
    workers: int = 1
    strategy: str | None = None
    sync_every: int | None = None
    partition: str = "contiguous"
    checkpoint_dir: str | None = None
    checkpoint_every: int | str | None = None  # steps (100) or a time ("30s"); None: only at the end
    resume: bool = False  # continue from the newest valid checkpoint in checkpoint_dir
    max_restarts: int = 0  # local group: restart the workers this many times after a failure
    staleness: int = 4  # ssp: a worker may be this many clocks ahead of the slowest
    servers: int = 0  # dedicated parameter-server processes (0: every worker hosts one shard)
    slicer: str = "range"  # parameter-server key -> shard: "range" or "hash"
    ps_dtype: str = "float64"  # the shards' parameter type ("float32" halves their memory)
    precondition: bool = True  # solve in standardised coordinates (the parameter server never does)

    @property
    def plan(self) -> str:
        """The strategy that runs: given, or the solver's (sgd -> bsp)."""
        return self.strategy if self.strategy is not None else SOLVER_STRATEGY[self.solver]

    @property
    def stochastic(self) -> bool:
        return self.plan in ("bsp", "local_sgd", "ssp", "asp", "hogwild")

    @property
    def processes(self) -> int:
        """Processes of the local group: the workers, plus dedicated servers."""
        return self.workers + self.servers

    def validate(self) -> None:
        if self.solver not in SOLVER_STRATEGY:
            raise ConfigError(f"solver={self.solver!r} is not known; expected one of {', '.join(SOLVER_STRATEGY)}")
        if not (isinstance(self.workers, (int, np.integer)) and self.workers >= 1):
            raise ConfigError(f"workers must be a positive integer, got {self.workers!r}")
        if self.strategy is not None and self.strategy not in ALL_STRATEGIES:
            raise ConfigError(f"strategy={self.strategy!r} is not known; expected one of {', '.join(ALL_STRATEGIES)}")
        if not (isinstance(self.staleness, (int, np.integer)) and self.staleness >= 0):
            raise ConfigError(f"staleness must be an integer >= 0, got {self.staleness!r}")
        if not (isinstance(self.servers, (int, np.integer)) and self.servers >= 0):
            raise ConfigError(f"servers must be an integer >= 0, got {self.servers!r}")
        if self.servers and self.plan not in ("bsp", "ssp", "asp"):
            raise ConfigError(f"servers={self.servers} needs a parameter-server strategy (bsp, ssp, asp), "
                              f"not {self.plan!r}")
        if self.slicer not in ("range", "hash"):
            raise ConfigError(f"slicer={self.slicer!r}: expected 'range' or 'hash'")
        if self.ps_dtype not in ("float32", "float64"):
            raise ConfigError(f"ps_dtype={self.ps_dtype!r}: expected 'float32' or 'float64'")
        if self.plan in ("ssp", "asp", "hogwild") and self.solver != "sgd":
            raise ConfigError(f"strategy={self.plan!r} is stochastic: use solver='sgd'")
        if self.partition not in PARTITIONERS or self.partition == "hash":
            raise ConfigError(f"partition={self.partition!r}: expected contiguous, random or stratified")
        if self.sync_every is not None and not (isinstance(self.sync_every, int) and self.sync_every >= 1):
            raise ConfigError(f"sync_every must be a positive integer, got {self.sync_every!r}")
        if not (self.alpha >= 0):
            raise ConfigError(f"alpha must be >= 0, got {self.alpha!r}")
        if not (0.0 <= self.l1_ratio <= 1.0):
            raise ConfigError(f"l1_ratio must be in [0, 1], got {self.l1_ratio!r}")
        if not (isinstance(self.max_iter, int) and self.max_iter >= 1):
            raise ConfigError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.tol is not None and not (self.tol >= 0):
            raise ConfigError(f"tol must be >= 0 or None, got {self.tol!r}")
        if self.optimizer not in optim.OPTIMIZERS:
            raise ConfigError(f"optimizer={self.optimizer!r} is not known; expected one of {', '.join(optim.OPTIMIZERS)}")
        if self.checkpoint_every is not None:
            parse_every(self.checkpoint_every)
        if self.resume and not self.checkpoint_dir:
            raise ConfigError("resume needs a checkpoint directory (--checkpoint-dir)")
        if not (isinstance(self.max_restarts, (int, np.integer)) and self.max_restarts >= 0):
            raise ConfigError(f"max_restarts must be an integer >= 0, got {self.max_restarts!r}")
        if self.schedule not in optim.SCHEDULES:
            raise ConfigError(f"schedule={self.schedule!r} is not known; expected one of {', '.join(optim.SCHEDULES)}")

    def lr(self):
        base = DEFAULT_LEARNING_RATE[self.optimizer] if self.learning_rate is None else float(self.learning_rate)
        if not base > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        return optim.SCHEDULES[self.schedule](base)


class TrainState(NamedTuple):
    """What ``partial_fit`` needs to continue: scaled parameters, preconditioner,
    optimizer state and the number of epochs done."""

    theta: dict
    affine: Affine
    opt_state: Any
    epoch: int


def _affine(model, X, sample_weight, cfg: TrainConfig, comm=None):
    """The preconditioner agreed over workers, and this worker's share of the total weight.
    Full-batch strategies centre and scale by the variance; stochastic ones scale by the RMS
    where a feature is present (``precond.where_present``), as the parameter-server shards do."""
    s1, s2, total = precond.moments(X, sample_weight) if X.shape[0] else (np.zeros(X.shape[1]), np.zeros(X.shape[1]), 0.0)
    local_total = total
    d = X.shape[1]
    if cfg.stochastic and cfg.precondition:
        s2, count = precond.presence_moments(X, sample_weight) if X.shape[0] else (np.zeros(d), np.zeros(d))
        if comm is not None and comm.size > 1:
            vec = comm.allreduce(np.concatenate([s2, count, [total]]))
            s2, count, total = vec[:d], vec[d : 2 * d], float(vec[-1])
        scale = precond.where_present(s2, count, model.curvature, cfg.alpha * (1.0 - cfg.l1_ratio))
        return Affine(np.zeros(d), scale), (local_total / total if total > 0 else 0.0)
    if comm is not None and comm.size > 1:
        vec = comm.allreduce(np.concatenate([s1, s2, [total]]))
        s1, s2, total = vec[:d], vec[d : 2 * d], float(vec[-1])
    affine = precond.from_moments(s1, s2, total, curvature=model.curvature, ridge=cfg.alpha * (1.0 - cfg.l1_ratio),
                                  center=cfg.fit_intercept) if cfg.precondition else precond.identity(d)
    return affine, (local_total / total if total > 0 else 0.0)


def train(model, X, y, sample_weight, cfg: TrainConfig, n_outputs: int = 1, state: TrainState | None = None,
          epochs: int | None = None, callback=None):
    """Fit from scratch (``state=None``) or continue an sgd run for ``epochs`` epochs.

    Returns ``(params, n_iter, state)`` with ``params`` in the original feature space.
    ``callback(params, iteration)`` sees the iterates, in the original space.
    With ``cfg.workers > 1`` the rows are split over a local worker group.
    """
    cfg.validate()
    if cfg.workers > 1 or cfg.max_restarts > 0 or cfg.servers > 0 or cfg.plan in ("ssp", "asp", "hogwild"):
        if state is not None:
            raise ConfigError("partial_fit runs in one process; use workers=1 for partial_fit")
        from shardlearn.runtime import distributed

        if n_outputs != 1 and (cfg.servers or cfg.plan in ("ssp", "asp", "hogwild")):
            raise ConfigError(f"strategy={cfg.plan!r} keeps one weight per feature (parameter server, shared "
                              "vector): binary or regression models only; use bsp or local_sgd for softmax")

        params, n_iter = distributed.train_arrays(model, X, y, sample_weight, cfg, n_outputs)
        return params, n_iter, None
    return train_local(model, X, y, sample_weight, cfg, n_outputs, state=state, epochs=epochs, callback=callback,
                       compact=epochs is None and not cfg.stochastic)


def active_columns(X, comm=None):
    """Columns of a sparse ``X`` that hold a value on some worker (None: dense, or all active).

    A column that is zero in every row has a zero data gradient, so with the (L2 or
    elastic-net) penalty its optimal weight is exactly 0: training on the active
    columns only and scattering back gives the same model, with far smaller vectors
    to optimise and allreduce (D2: 818,292 of 4,194,304 columns)."""
    import scipy.sparse as sp

    if not sp.issparse(X):
        return None
    mask = np.zeros(X.shape[1], dtype=np.float32)
    mask[X.indices] = 1.0
    if comm is not None and comm.size > 1:
        mask = comm.allreduce(mask, op="max")
    active = np.flatnonzero(mask)
    return None if active.size == X.shape[1] else active


def _compact(X, active):
    import scipy.sparse as sp

    small = active.size < 2**31 and X.nnz < 2**31
    pos = np.full(X.shape[1], -1, dtype=np.int32 if small else np.int64)
    pos[active] = np.arange(active.size)
    indptr = X.indptr.astype(np.int32) if small else X.indptr
    return sp.csr_matrix((X.data, pos[X.indices], indptr), shape=(X.shape[0], active.size))


def _scatter(params, active, width):
    w = params["w"]
    full = np.zeros((width,) + w.shape[1:])
    full[active] = w
    return {"w": full, "b": params["b"]}


def train_local(model, X, y, sample_weight, cfg: TrainConfig, n_outputs: int = 1, state: TrainState | None = None,
                epochs: int | None = None, callback=None, comm=None, progress=None, show=None, compact=True,
                report: dict | None = None):
    """One worker's part: its rows ``X``, and ``comm`` to agree with the others (None: alone).
    ``progress(record)`` receives each step's metrics; ``show`` the progress bar (None: on a terminal);
    ``compact``: train on the active columns of sparse data only (not for continued sgd runs);
    ``report`` (a dict) receives ``resumed_from`` (checkpoint step) and ``resumed_at`` (epoch seconds)."""
    active = active_columns(X, comm) if compact and state is None else None
    if active is not None:
        width, X = X.shape[1], _compact(X, active)
        user_cb = callback
        callback = None if user_cb is None else (lambda p, it: user_cb(_scatter(p, active, width), it))
    params, n_iter, new_state = _train_local_logged(model, X, y, sample_weight, cfg, n_outputs, state, epochs,
                                                    callback, comm, progress, show, report)
    if active is not None:
        return _scatter(params, active, width), n_iter, None
    return params, n_iter, new_state


def _train_local_logged(model, X, y, sample_weight, cfg, n_outputs, state, epochs, callback, comm, progress, show,
                        report=None):
    counter = RowCounter(model)
    log = StepLog(comm, total=cfg.max_iter if epochs is None else epochs, counter=counter, show=show, sink=progress)
    try:
        ckpt, resume = checkpointer_for(counter.model, X, cfg, comm, log, report)
        out = _train_local(counter.model, X, y, sample_weight, cfg, n_outputs, state, epochs, callback, comm, log,
                           ckpt, resume)
    finally:
        log.close()
    LAST_STEPS[:] = log.records
    return out


def _n_rows(X, comm) -> int:
    n = float(X.shape[0])
    return int(comm.allreduce(np.array([n]))[0]) if comm is not None and comm.size > 1 else int(n)


RESUME_KEYS = ("plan", "partition", "shuffle", "random_state", "batch_size", "optimizer", "learning_rate", "schedule",
               "alpha", "l1_ratio", "fit_intercept", "sync_every", "precondition", "staleness", "servers", "slicer",
               "ps_dtype", "solver")


def resume_fingerprint(cfg: TrainConfig) -> dict:
    """The settings a resumed run must share with the one that wrote the checkpoint: any of
    them changed (another partition, shuffle, optimizer, penalty...) would silently break
    exactly-once or continue a different algorithm. ``max_iter`` and ``tol`` may change
    (a resumed run may go on longer); ``workers`` is checked by the checkpointer itself."""
    out = {k: getattr(cfg, k) for k in RESUME_KEYS if k != "plan"}
    out["strategy"] = cfg.plan
    return out


def checkpointer_for(model, X, cfg: TrainConfig, comm, log: StepLog, report):
    """The run's checkpointer (None without a directory) and, with ``cfg.resume``, this rank's
    arrays of the newest valid checkpoint (the metrics before it go back into ``log``)."""
    if not cfg.checkpoint_dir or cfg.plan == "average":
        return None, None
    fingerprint = dict({"model": model.name, "rows": _n_rows(X, comm), "features": int(X.shape[1])},
                       **resume_fingerprint(cfg))
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


def _train_local(model, X, y, sample_weight, cfg, n_outputs, state, epochs, callback, comm, log, ckpt=None,
                 resume=None):
    if state is None:
        affine, share = _affine(model, X, sample_weight, cfg, comm)
        theta = precond.to_scaled(model.init(X.shape[1], n_outputs), affine)
        opt_state, epoch = None, 0
    else:
        theta, affine, opt_state, epoch = state
        share = 1.0
    rows_per_pass = _n_rows(X, comm)

    def cb(th, it, loss, examples=None):  # full-batch strategies use every row once per pass
        log.step(it, loss, rows_per_pass if examples is None else examples)
        if callback is not None:
            callback(precond.to_original(th, affine), it)

    common = dict(theta0=theta, affine=affine, alpha=cfg.alpha, l1_ratio=cfg.l1_ratio,
                  fit_intercept=cfg.fit_intercept, callback=cb, comm=comm)
    plan = cfg.plan
    if plan != "average":
        common.update(checkpoint=ckpt, resume=resume)
    if cfg.stochastic or state is not None:
        opt = optim.make(cfg.optimizer, cfg.lr(), l1=l1_weights(theta, affine, cfg.alpha, cfg.l1_ratio))
        sync_every = cfg.sync_every or (8 if plan == "local_sgd" else 1)
        res = STRATEGIES["bsp"](model, X, y, sample_weight, optimizer=opt, opt_state=opt_state,
                                batch_size=cfg.batch_size, epochs=cfg.max_iter if epochs is None else epochs,
                                start_epoch=epoch, shuffle=cfg.shuffle, seed=cfg.random_state, tol=cfg.tol,
                                sync="params" if plan == "local_sgd" else "gradients", sync_every=sync_every, **common)
    else:
        res = STRATEGIES[plan](model, X, y, sample_weight, max_iter=cfg.max_iter,
                               tol=1e-6 if cfg.tol is None else cfg.tol, share=share, **common)
    new_state = TrainState(res.theta, affine, res.state, epoch + res.n_iter)
    return precond.to_original(res.theta, affine), res.n_iter, new_state
