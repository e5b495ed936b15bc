"""Thousands of small linear models fitted at once: one ridge or L2-logistic model per group
of rows, every group's normal equations or Newton step solved together as one stacked
batch (``numpy.linalg.solve`` over ``(G, d+1, d+1)``), the per-group sums in one compiled
pass over the rows (``kernels/groups.py``). No Python runs per row or per group.

Each group ``g`` minimises the objective shardlearn's ``LinearRegression`` and
``LogisticRegression`` minimise on its rows alone: the weighted mean loss plus
``alpha/2 ||w||^2`` (the intercept free). Ridge is solved exactly; logistic by Newton's
method with a backtracking (Armijo) step per group (Nocedal & Wright 2006, ch. 3), until
no gradient entry of the group exceeds ``tol`` or the Newton decrement says the objective
cannot drop by more than rounding (Boyd & Vandenberghe 2004, 9.5).

>>> import numpy as np
>>> X = np.array([[0.0], [1.0], [2.0], [0.0], [1.0]]); y = np.array([1.0, 3.0, 5.0, 0.0, -1.0])
>>> starts = np.array([0, 3, 5])
>>> theta = ridge(X, y, starts, np.array([1/3, 1/3, 1/3, 0.5, 0.5]), alpha=0.0, fit_intercept=True)
>>> np.round(theta, 6).tolist()  # group 0: y = 2x + 1; group 1: y = -x
[[2.0, 1.0], [-1.0, 0.0]]
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit

from shardlearn.kernels import groups as kg


def within_group_weights(sample_weight, starts) -> np.ndarray:
    """Each row's weight over its group's total (uniform when ``sample_weight`` is None)."""
    sizes = np.diff(starts)
    sw = np.ones(starts[-1]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    totals = np.add.reduceat(sw, starts[:-1]) if sizes.size else np.zeros(0)
    return sw / np.repeat(np.where(totals > 0, totals, 1.0), sizes)


def _solve(A, r):
    try:
        return np.linalg.solve(A, r[..., None])[..., 0]
    except np.linalg.LinAlgError:  # a singular group (fewer rows than features, no penalty): least norm
        return np.einsum("gij,gj->gi", np.linalg.pinv(A, hermitian=True), r)


def _penalised(A, alpha, d, fit_intercept):
    A[:, np.arange(d), np.arange(d)] += alpha
    if not fit_intercept:  # the intercept's row and column out: its step is zero
        A[:, d, :], A[:, :, d], A[:, d, d] = 0.0, 0.0, 1.0
    return A


def ridge(X, y, starts, p, *, alpha: float, fit_intercept: bool) -> np.ndarray:
    """``theta`` ``(G, d + 1)`` (weights, then the intercept) minimising each group's
    ``sum_i p_i (x_i w + b - y_i)^2 / 2 + alpha/2 ||w||^2``; ``p`` sums to one in each group."""
    d = X.shape[1]
    A = _penalised(kg.gram(X, starts, p), alpha, d, fit_intercept)
    r = kg.xt_vec(X, starts, p * y)
    if not fit_intercept:
        r[:, d] = 0.0
    return _solve(A, r)


def logistic(X, y, starts, p, *, alpha: float, fit_intercept: bool, tol: float = 1e-9,
             max_iter: int = 100) -> np.ndarray:
    """``theta`` ``(G, d + 1)`` minimising each group's ``sum_i p_i logloss_i + alpha/2 ||w||^2``
    (``y`` in {0, 1}, both classes present in every group)."""
    G, d = starts.size - 1, X.shape[1]
    row_group = np.repeat(np.arange(G), np.diff(starts))
    reg = np.r_[np.full(d, alpha), 0.0]

    def objective(theta):
        z = kg.scores(X, starts, theta)
        return (np.bincount(row_group, weights=p * (np.logaddexp(0.0, z) - y * z), minlength=G)
                + 0.5 * alpha * np.einsum("gj,gj->g", theta[:, :d], theta[:, :d]))

    theta = np.zeros((G, d + 1))
    value, done = objective(theta), np.zeros(G, dtype=bool)
    for _ in range(max_iter):
        mu = expit(kg.scores(X, starts, theta))
        g = kg.xt_vec(X, starts, p * (mu - y)) + reg * theta
        if not fit_intercept:
            g[:, d] = 0.0
        done |= np.abs(g).max(axis=1) <= tol
        if done.all():
            break
        H = _penalised(kg.gram(X, starts, p * mu * (1.0 - mu)), alpha, d, fit_intercept)
        step = _solve(H + 1e-12 * np.eye(d + 1), g)
        decrease = np.einsum("gj,gj->g", g, step)  # the squared Newton decrement
        done |= decrease <= 1e-15 * np.maximum(value, 1e-3)
        step[done] = 0.0
        t, accepted = np.ones(G), done.copy()
        for _ in range(50):
            trial = theta - t[:, None] * step
            tv = objective(trial)
            ok = ~accepted & (tv <= value - 1e-4 * t * decrease)
            theta[ok], value[ok] = trial[ok], tv[ok]
            accepted |= ok
            if accepted.all():
                break
            t = np.where(accepted, t, 0.5 * t)
        done |= ~accepted  # no step lowers the objective at this precision: as good as it gets
    return theta
