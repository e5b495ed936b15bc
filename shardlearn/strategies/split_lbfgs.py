"""L-BFGS (Liu & Nocedal 1989) and, with an L1 term, OWL-QN (Andrew & Gao 2007, "Scalable
training of L1-regularized log-linear models") over a parameter vector split across
workers: each worker holds its own part of every vector, and no vector ever travels.

The search direction is found the vector-free way (Chen, Wang, Zhou & Gao 2014,
"Large-scale L-BFGS using MapReduce"): the two-loop recursion runs on the small matrix
of dot products between the stored pairs ``s_i``, ``y_i`` and the current (pseudo-)
gradient, and only that matrix's new entries are summed across workers, one allreduce of
``3 (2m + 1)`` numbers per iteration; the direction is then the same combination of each
worker's own parts. The step is chosen by backtracking until the Armijo condition holds
(projected onto the current orthant with L1, as OWL-QN does).

``fun(x)`` returns the smooth objective (the same number on every worker) and this
worker's part of its gradient; ``gram(A, B)`` the dot products of the whole vectors whose
parts are the rows of ``A`` and ``B`` (a replicated part counted once). With one worker,
``gram`` is a plain product and this is ordinary L-BFGS / OWL-QN.

>>> import numpy as np
>>> A = np.array([[3.0, 1.0], [1.0, 2.0]]); c = np.array([1.0, -1.0])
>>> fun = lambda x: (0.5 * x @ A @ x - c @ x, A @ x - c)
>>> r = minimize(fun, np.zeros(2), gram=lambda P, Q: P @ Q.T, tol=1e-12)
>>> np.round(r.x, 6).tolist(), r.converged
([0.6, -0.8], True)
>>> r = minimize(fun, np.zeros(2), gram=lambda P, Q: P @ Q.T, l1=np.array([0.0, 2.0]), tol=1e-12)
>>> np.round(r.x, 6).tolist()  # the L1 term puts the second coordinate at exactly zero
[0.333333, 0.0]
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Outcome(NamedTuple):
    x: np.ndarray  # this worker's part of the minimiser
    objective: float  # smooth part plus the L1 term
    n_iter: int
    converged: bool  # the (pseudo-)gradient's norm fell to tol, or no step could lower the objective


def pseudo_gradient(x, g, l1):
    """OWL-QN's steepest-descent direction, negated, of ``f + sum(l1 |x|)``: at zero, the
    one-sided derivative that lowers the objective, or zero when neither does."""
    if l1 is None:
        return g
    pg = g + l1 * np.sign(x)
    at0 = x == 0
    up, down = g[at0] + l1[at0], g[at0] - l1[at0]
    pg[at0] = np.where(up < 0, up, np.where(down > 0, down, 0.0))
    return pg


def _coefficients(G, k):
    """The two-loop recursion on dot products: coefficients ``r`` over the basis
    ``[s_0..s_{k-1}, y_0..y_{k-1}, v]`` such that ``sum r_j basis_j`` is H v."""
    q = np.zeros(2 * k + 1)
    q[2 * k] = 1.0
    a = np.zeros(k)
    for i in reversed(range(k)):
        a[i] = (G[i] @ q) / G[i, k + i]
        q[k + i] -= a[i]
    r = q * (G[k - 1, 2 * k - 1] / G[2 * k - 1, 2 * k - 1] if k else 1.0)
    for i in range(k):
        r[i] += a[i] - (G[k + i] @ r) / G[i, k + i]
    return r


def minimize(fun, x0, *, gram, l1=None, max_iter=1000, tol=1e-9, memory=10, ftol=1e-15, callback=None) -> Outcome:
    """Minimise ``f(x) + sum(l1 |x|)`` from ``x0`` (this worker's parts); ``memory=0`` is
    steepest descent with the same line search. ``callback(x, iteration, objective)``."""
    x = np.array(x0, dtype=np.float64)
    f, g = fun(x)
    F = f + (float(gram(l1[None], np.abs(x)[None])[0, 0]) if l1 is not None else 0.0)
    v = pseudo_gradient(x, g, l1)
    S, Y = np.zeros((0, x.size)), np.zeros((0, x.size))
    G = gram(v[None], v[None])  # dot products of the basis [S, Y, v]
    converged, it = False, 0
    for it in range(1, max_iter + 1):
        k = S.shape[0]
        if np.sqrt(max(G[2 * k, 2 * k], 0.0)) <= tol:
            converged, it = True, it - 1
            break
        r = _coefficients(G, k)
        d = -(r @ np.vstack([S, Y, v[None]]))
        if l1 is not None:
            d[d * v >= 0] = 0.0  # OWL-QN: keep only coordinates that move against the pseudo-gradient
        slope = -(r @ G[:, 2 * k]) if l1 is None else None
        orthant = np.where(x != 0, np.sign(x), -np.sign(v)) if l1 is not None else None
        step = 1.0 if k else 1.0 / np.sqrt(G[0, 0])
        for _ in range(60):
            xn = x + step * d
            if l1 is not None:
                xn[xn * orthant < 0] = 0.0
            fn, gn = fun(xn)
            if l1 is None:
                Fn, bound = fn, step * slope
            else:
                dots = gram(np.vstack([v, l1]), np.vstack([xn - x, np.abs(xn)]))
                Fn, bound = fn + dots[1, 1], dots[0, 0]
            if Fn <= F + 1e-4 * bound:
                break
            step *= 0.5
        else:
            converged = True  # no step lowers the objective at this precision
            break
        done = F - Fn <= ftol * max(abs(F), abs(Fn), 1.0)
        s, y, v = xn - x, gn - g, pseudo_gradient(xn, gn, l1)
        x, g, F = xn, gn, Fn
        S, Y, G = _remember(S, Y, G, s, y, v, gram, memory)
        if callback is not None:
            callback(x, it, F)
        if done:
            converged = True
            break
    return Outcome(x, float(F), it, converged)


def _remember(S, Y, G, s, y, v, gram, memory):
    """``(S, Y, G)`` with the new pair (kept when its curvature ``s.y`` is positive), the oldest
    dropped past ``memory``, and the new gradient ``v``; the new dot products come from one
    ``gram`` call, the retained ones from ``G``."""
    if memory == 0:
        return S, Y, gram(v[None], v[None])
    k = S.shape[0]
    new = gram(np.vstack([s, y, v]), np.vstack([S, s[None], Y, y[None], v[None]]))
    C = np.empty((2 * k + 3, 2 * k + 3))  # candidate basis: S, s, Y, y, v
    old = np.r_[np.arange(k), k + 1 + np.arange(k)]
    C[np.ix_(old, old)] = G[:2 * k, :2 * k]
    for row, at in zip(new, (k, 2 * k + 1, 2 * k + 2)):
        C[at, :], C[:, at] = row, row
    if C[k, 2 * k + 1] > 1e-10 * C[2 * k + 1, 2 * k + 1]:
        S, Y, first, count = np.vstack([S, s[None]]), np.vstack([Y, y[None]]), max(0, k + 1 - memory), k + 1
    else:  # no positive curvature along this step (a flat or nonconvex stretch): keep the old pairs
        first, count = 0, k
    pairs = np.arange(first, count)
    keep = np.r_[pairs, k + 1 + pairs, 2 * k + 2]
    return S[first:], Y[first:], C[np.ix_(keep, keep)]
