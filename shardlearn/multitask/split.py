"""A joint multi-task fit with the tasks partitioned across workers (model partitioning by
task): each worker holds the rows of its own tasks (by a hash of the task id, the hash
partitioner) and their parameters ``v_t``, ``b_t``, which never leave it; the shared part
``w0`` is replicated, and only its gradient travels, one allreduce of ``d + 1`` numbers
per objective evaluation, beside the solver's few dot products (``split_lbfgs``).

The solver runs in Jacobi-scaled coordinates (each coordinate divided by the square root
of its curvature bound plus its penalty, ``models.multitask.curvature``), so that a
``task_alpha`` of 1e7 beside an ``alpha`` of 1e-3 does not make it crawl.

One worker runs the same code over a one-process collective:

>>> import numpy as np
>>> from shardlearn.comm.base import LocalCollective
>>> rng = np.random.default_rng(0)
>>> X, index = rng.normal(size=(200, 2)), rng.integers(3, size=200)
>>> y = X @ np.array([1.0, -1.0]) + np.array([0.0, 2.0, -2.0])[index]
>>> part = fit_part(LocalCollective(), X, y, None, index, np.arange(3), loss="squared", alpha=1e-6,
...                 task_alpha=1.0, l1_ratio=0.0, fit_intercept=True, max_iter=500, tol=1e-10)
>>> np.round(part["w0"], 3).tolist(), (np.round(part["b"], 3) + 0.0).tolist()
([1.0, -1.0], [0.0, 2.0, -2.0])
"""
from __future__ import annotations

import time

import numpy as np

from shardlearn.data import partition
from shardlearn.models import multitask as mt
from shardlearn.strategies import split_lbfgs

SOLVER_MEMORY = {"lbfgs": 10, "gd": 0}  # pairs kept by the solver: L-BFGS / OWL-QN, or steepest descent


def owners(task_ids, workers: int) -> np.ndarray:
    """The worker that owns each task: murmurhash3 of the task id modulo ``workers``."""
    return partition.key_hashes(task_ids) % workers


def fit_part(comm, X, y, sample_weight, index, owned, *, loss, alpha, task_alpha, l1_ratio, fit_intercept,
             max_iter, tol, solver="lbfgs") -> dict:
    """Fit this worker's part: ``X, y, sample_weight`` are its rows, ``index`` each row's task
    (a global task number, one of ``owned``). Returns ``w0`` (every worker has it), this
    worker's ``V`` and ``b`` (for ``owned``, in order) and the fit's facts."""
    d = X.shape[1]
    local = mt.Tasks(np.searchsorted(owned, index), owned.size)
    sw = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    total = float(comm.allreduce(np.array([sw.sum()]))[0])
    p = sw / total
    a2, t2 = alpha * (1.0 - l1_ratio), task_alpha * (1.0 - l1_ratio)
    h = mt.curvature(loss, X, local, p)
    h["w0"] = comm.allreduce(h["w0"]) + a2
    h["V"] += t2
    h = np.concatenate([h["w0"], h["V"].ravel(), h["b"]])
    scale = np.sqrt(np.where(h > 0, h, 1.0))
    mask = np.ones(h.size)
    mask[:d] = 1.0 if comm.rank == 0 else 0.0  # the replicated w0 counts once in every dot product
    layout = (d, owned.size)
    evaluations = [0]

    def fun(u):
        evaluations[0] += 1
        params = mt.unflat(u / scale, *layout)
        value, g = mt.data_terms(loss, params, X, y, local, p)
        packed = comm.allreduce(np.append(g["w0"], value + 0.5 * t2 * float(np.sum(params["V"] ** 2))))
        w0 = params["w0"]
        g["w0"] = packed[:d] + a2 * w0
        g["V"] += t2 * params["V"]
        if not fit_intercept:
            g["b"][:] = 0.0
        return float(packed[d]) + 0.5 * a2 * float(w0 @ w0), mt.flat(g) / scale

    def gram(A, B):
        return comm.allreduce(np.ascontiguousarray(A @ (B * mask).T))

    l1 = None
    if l1_ratio > 0 and (alpha > 0 or task_alpha > 0):
        l1 = np.concatenate([np.full(d, alpha * l1_ratio), np.full(owned.size * d, task_alpha * l1_ratio),
                             np.zeros(owned.size)]) / scale
    before, t = comm.stats.snapshot(), time.perf_counter()
    out = split_lbfgs.minimize(fun, np.zeros(h.size), gram=gram, l1=l1, max_iter=max_iter, tol=tol,
                               memory=SOLVER_MEMORY[solver])
    after = comm.stats.snapshot()
    params = mt.unflat(out.x / scale, *layout)
    return {"w0": params["w0"], "V": params["V"], "b": params["b"], "n_iter": out.n_iter,
            "objective": out.objective, "converged": out.converged,
            "report": {"rank": comm.rank, "rows": int(X.shape[0]), "tasks": int(owned.size),
                       "evaluations": evaluations[0], "fit_seconds": time.perf_counter() - t,
                       **{k: after[k] - before[k] for k in after}}}


def fit_job(comm, *, progress=None, cfg=None, spill, owner, hyper) -> dict:
    """The worker job (``"shardlearn.multitask.split:fit_job"`` on the local group): map the
    spilled arrays, keep the rows of this worker's tasks, fit, and hand back this worker's
    part of the model (``part``: its task numbers, ``V`` and ``b``)."""
    from shardlearn.runtime.spill import open_extra, open_spec

    X, y, sw = open_spec(spill)
    index = np.asarray(open_extra(spill, "tasks"))
    owner = np.asarray(owner)
    owned = np.flatnonzero(owner == comm.rank)
    rows = np.flatnonzero(owner[index] == comm.rank)
    part = fit_part(comm, X[rows], np.asarray(y[rows]), None if sw is None else np.asarray(sw[rows]), index[rows],
                    owned, **hyper)
    return {"params": {"w0": part["w0"]}, "n_iter": part["n_iter"], "steps": [], "report": part["report"],
            "objective": part["objective"], "converged": part["converged"],
            "part": {"tasks": owned, "V": part["V"], "b": part["b"]}}
