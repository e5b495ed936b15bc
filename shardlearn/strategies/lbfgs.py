"""Full-batch L-BFGS (Liu & Nocedal, 1989) through ``scipy.optimize`` (L-BFGS-B,
Byrd et al., 1995), in scaled coordinates.

The L1 part is kept exact: ``v = p - q`` with ``p, q >= 0`` turns
``lambda |v|`` into the linear term ``lambda (p + q)`` under bound constraints
(the standard split of Schmidt, Fung & Rosales, 2007), so there is no smoothing.

>>> import numpy as np
>>> from shardlearn import models
>>> from shardlearn.strategies import precond
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([1.0, 3.0, 5.0, 7.0])
>>> a = precond.fit(X)
>>> r = fit(models.get("linear"), X, y, theta0=models.get("linear").init(1), affine=a, tol=1e-10)
>>> w = precond.to_original(r.theta, a)
>>> round(float(w["w"][0]), 6), round(float(w["b"]), 6)
(2.0, 1.0)
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize

from shardlearn.core import tree
from shardlearn.strategies import objective
from shardlearn.strategies.result import Result


def fit(model, X, y, sample_weight=None, *, theta0, affine, alpha=0.0, l1_ratio=0.0, fit_intercept=True,
        max_iter=100, tol=1e-6, callback=None, comm=None, share=1.0, memory=10) -> Result:
    """Minimise the objective; ``callback(theta, iteration, objective)`` sees every iterate."""
    _, unravel = tree.ravel(theta0)
    use_l1 = alpha > 0 and l1_ratio > 0
    wsize = theta0["w"].size
    l1w = objective.l1_weights(theta0, affine, alpha, l1_ratio)["w"].ravel()

    def split(x):
        if not use_l1:
            return x
        v = x[:wsize] - x[wsize : 2 * wsize]
        return np.concatenate([x[2 * wsize :], v]) if _b_first(theta0) else np.concatenate([v, x[2 * wsize :]])

    last = [np.nan]

    def fun(x):
        theta = unravel(split(x))
        f, g = objective.smooth(model, theta, X, y, sample_weight, affine, alpha, l1_ratio, fit_intercept,
                                    comm, share)
        gvec, _ = tree.ravel(g)
        if not use_l1:
            last[0] = f
            return f, gvec
        gw, gb = _parts(gvec, theta0, wsize)
        pq = x[: 2 * wsize]
        f += float(l1w @ (pq[:wsize] + pq[wsize:]))
        last[0] = f
        return f, np.concatenate([gw + l1w, -gw + l1w, gb])

    x0, _ = tree.ravel(theta0)
    bounds = None
    if use_l1:
        w0, b0 = _parts(x0, theta0, wsize)
        x0 = np.concatenate([np.maximum(w0, 0), np.maximum(-w0, 0), b0])
        bounds = [(0, None)] * (2 * wsize) + [(None, None)] * (x0.size - 2 * wsize)
    count = [0]

    def cb(xk):
        count[0] += 1
        if callback is not None:
            callback(unravel(split(xk)), count[0], last[0])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds, callback=cb,
                       options={"maxiter": max_iter, "gtol": tol, "ftol": 0.1 * tol * tol, "maxcor": memory,
                                "maxls": 50})
    theta = unravel(split(res.x))
    return Result(theta, max(int(res.nit), 1), bool(res.success and res.nit < max_iter), float(res.fun))


def _b_first(theta0) -> bool:
    return sorted(theta0)[0] == "b"


def _parts(vec, theta0, wsize):
    """Split a raveled vector into (w part, b part); ravel orders keys sorted ("b" first)."""
    nb = vec.size - wsize
    if _b_first(theta0):
        return vec[nb:], vec[:nb]
    return vec[:wsize], vec[wsize:]
