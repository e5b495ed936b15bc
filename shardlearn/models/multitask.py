"""Joint multi-task linear models: task ``t``'s weights are ``w0 + v_t``, a part every task
shares and a part of its own, with an intercept per task (regularized multi-task learning,
Evgeniou & Pontil 2004, "Regularized multi-task learning"). The objective is the weighted
mean loss over all rows plus ``alpha/2 ||w0||^2 + task_alpha/2 sum_t ||v_t||^2``:
``task_alpha -> inf`` pools the tasks (every ``v_t = 0``: one model with per-task
intercepts), ``alpha -> inf`` separates them (``w0 = 0``: one ridge model per task).

Parameters are plain arrays: ``{"w0": (d,), "V": (T, d), "b": (T,)}``; ``tasks`` holds each
row's task index in ``0..T-1``. Rows are grouped by task once (``Tasks``), and each task's
block is one product: for dense rows ``V[task]`` row by row and one sparse task-by-row
indicator product (``Tasks.members``); for sparse rows a loop over tasks, never over rows.

>>> import numpy as np
>>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
>>> tasks = Tasks(np.array([0, 1, 1]), 2)
>>> params = {"w0": np.array([1.0, 0.0]), "V": np.array([[0.0, 0.0], [0.0, 2.0]]), "b": np.zeros(2)}
>>> scores(params, X, tasks).tolist()
[1.0, 2.0, 3.0]
>>> loss, grad = loss_and_grad("squared", params, X, np.zeros(3), tasks, alpha=0.0, task_alpha=0.0)
>>> round(loss, 4), grad["b"].tolist()
(2.3333, [0.3333333333333333, 1.6666666666666665])
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from shardlearn.models import linear, logistic
from shardlearn.models._glm import weights

LINKS = {"squared": linear.link, "logistic": logistic.link}


class Tasks:
    """Each row's task (``index``, in ``0..n_tasks-1``) and the rows of every task."""

    def __init__(self, index: np.ndarray, n_tasks: int):
        self.index, self.n_tasks = np.asarray(index, dtype=np.int64), int(n_tasks)
        self.order = np.argsort(self.index, kind="stable")
        self.bounds = np.searchsorted(self.index[self.order], np.arange(self.n_tasks + 1))

    def rows(self, t: int) -> np.ndarray:
        return self.order[self.bounds[t]:self.bounds[t + 1]]

    def present(self) -> np.ndarray:
        """The tasks with at least one row."""
        return np.flatnonzero(np.diff(self.bounds))

    @property
    def members(self) -> sp.csr_matrix:
        """The ``(n_tasks, n_rows)`` 0/1 matrix of which rows each task holds: ``members @ M``
        sums the rows of ``M`` per task."""
        if getattr(self, "_members", None) is None:
            n = self.index.size
            self._members = sp.csr_matrix((np.ones(n), self.order, self.bounds), shape=(self.n_tasks, n))
        return self._members


def _per_task(M, tasks: Tasks) -> np.ndarray:
    """``(n_tasks, d)``: the rows of ``M`` summed per task."""
    return np.asarray((tasks.members @ M).todense() if sp.issparse(M) else tasks.members @ M)


def init(n_features: int, n_tasks: int) -> dict:
    return {"w0": np.zeros(n_features), "V": np.zeros((n_tasks, n_features)), "b": np.zeros(n_tasks)}


def _dense(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float64).ravel()


def scores(params: dict, X, tasks: Tasks) -> np.ndarray:
    """``x_i . (w0 + v_t) + b_t`` of every row ``i`` of task ``t``."""
    z = _dense(X @ params["w0"]) + params["b"][tasks.index]
    if not sp.issparse(X):
        return z + np.einsum("ij,ij->i", X, params["V"][tasks.index])
    for t in tasks.present():
        r = tasks.rows(t)
        z[r] += _dense(X[r] @ params["V"][t])
    return z


def loss_and_grad(loss: str, params: dict, X, y, tasks: Tasks, *, alpha: float, task_alpha: float,
                  sample_weight=None) -> tuple[float, dict]:
    """The joint objective and its gradient in every parameter."""
    value, grad = data_terms(loss, params, X, y, tasks, weights(sample_weight, X.shape[0]))
    grad["w0"] += alpha * params["w0"]
    grad["V"] += task_alpha * params["V"]
    penalty = 0.5 * alpha * float(params["w0"] @ params["w0"]) + 0.5 * task_alpha * float(np.sum(params["V"] ** 2))
    return value + penalty, grad


def data_terms(loss: str, params: dict, X, y, tasks: Tasks, p: np.ndarray) -> tuple[float, dict]:
    """The weighted loss ``sum_i p_i loss_i`` (no penalty) and its gradient: the part of the
    objective that a worker computes on its own rows, with ``p`` normalised over all rows."""
    value, dz = LINKS[loss](scores(params, X, tasks), np.asarray(y, dtype=np.float64), p)
    gV = _per_task(X.multiply(dz[:, None]) if sp.issparse(X) else X * dz[:, None], tasks)
    return float(value), {"w0": _dense(X.T @ dz), "V": gV, "b": np.bincount(tasks.index, weights=dz,
                                                                            minlength=tasks.n_tasks)}


def curvature(loss: str, X, tasks: Tasks, p: np.ndarray) -> dict:
    """The loss's Hessian diagonal bounded the cheap way, ``c sum_i p_i x_ij^2`` (``c`` = 1
    squared, 1/4 logistic), for every parameter: the scale of each coordinate, so that one
    Jacobi rescaling makes far-apart penalties and feature scales comparable."""
    c = {"squared": 1.0, "logistic": 0.25}[loss]
    X2 = X.multiply(X) if sp.issparse(X) else X * X
    hV = _per_task(X2.multiply(p[:, None]) if sp.issparse(X) else X2 * p[:, None], tasks)
    return {"w0": c * _dense(X2.T @ p), "V": c * hV, "b": c * np.bincount(tasks.index, weights=p,
                                                                         minlength=tasks.n_tasks)}


def flat(params: dict) -> np.ndarray:
    return np.concatenate([params["w0"], params["V"].ravel(), params["b"]])


def unflat(theta: np.ndarray, n_features: int, n_tasks: int) -> dict:
    d, T = n_features, n_tasks
    return {"w0": theta[:d], "V": theta[d:d + T * d].reshape(T, d), "b": theta[d + T * d:]}


def as_rows(X):
    """``X`` as the products above read it: CSR for sparse input (row blocks by task), else a float array."""
    return sp.csr_matrix(X, dtype=np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64)
