"""Compiled per-group sums over dense rows sorted by group (group ``g`` holds rows
``starts[g]:starts[g+1]``): what fitting thousands of small linear models at once needs
(``multitask/batched.py``), in one pass over the rows and no Python per row or per group.
Each row carries an implicit last column of ones (the intercept).

>>> import numpy as np
>>> X = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]); starts = np.array([0, 2, 3])
>>> gram(X, starts, np.ones(3))[0].tolist()  # rows 0 and 1: [x, 1]^T [x, 1]
[[10.0, 14.0, 4.0], [14.0, 20.0, 6.0], [4.0, 6.0, 2.0]]
>>> xt_vec(X, starts, np.array([1.0, 1.0, 2.0])).tolist()
[[4.0, 6.0, 2.0], [10.0, 12.0, 2.0]]
>>> scores(X, starts, np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]])).tolist()
[1.5, 3.5, 6.0]
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def gram(X, starts, w):
    """``sum_i w_i [x_i, 1]^T [x_i, 1]`` per group: ``(G, d + 1, d + 1)``."""
    G, d = starts.size - 1, X.shape[1]
    out = np.zeros((G, d + 1, d + 1))
    for g in range(G):
        A = out[g]
        for i in range(starts[g], starts[g + 1]):
            wi = w[i]
            for j in range(d):
                v = wi * X[i, j]
                for k in range(j + 1):
                    A[j, k] += v * X[i, k]
                A[d, j] += v
            A[d, d] += wi
        for j in range(d + 1):
            for k in range(j):
                A[k, j] = A[j, k]
    return out


@njit(cache=True)
def xt_vec(X, starts, v):
    """``sum_i v_i [x_i, 1]`` per group: ``(G, d + 1)``."""
    G, d = starts.size - 1, X.shape[1]
    out = np.zeros((G, d + 1))
    for g in range(G):
        for i in range(starts[g], starts[g + 1]):
            for j in range(d):
                out[g, j] += v[i] * X[i, j]
            out[g, d] += v[i]
    return out


@njit(cache=True)
def scores(X, starts, theta):
    """``x_i . theta_g[:d] + theta_g[d]`` for every row ``i`` of group ``g``."""
    d = X.shape[1]
    out = np.empty(X.shape[0])
    for g in range(starts.size - 1):
        for i in range(starts[g], starts[g + 1]):
            z = theta[g, d]
            for j in range(d):
                z += X[i, j] * theta[g, j]
            out[i] = z
    return out
