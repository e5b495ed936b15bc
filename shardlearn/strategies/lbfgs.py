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

from shardlearn.core import tree
from shardlearn.strategies import objective
from shardlearn.strategies.result import Result


def fit(model, X, y, sample_weight=None, *, theta0, affine, alpha=0.0, l1_ratio=0.0, fit_intercept=True,
        max_iter=100, tol=1e-6, callback=None, comm=None, share=1.0, memory=10, checkpoint=None,
        resume=None) -> Result:
    """Minimise the objective; ``callback(theta, iteration, objective)`` sees every iterate.
    ``checkpoint`` (a ``runtime.checkpoint.Checkpointer``) saves the solver state when due;
    ``resume`` (the arrays of such a checkpoint) continues from it."""
    _, unravel = tree.ravel(theta0)
    use_l1 = alpha > 0 and l1_ratio > 0
    wsize = theta0["w"].size
    l1w = objective.l1_weights(theta0, affine, alpha, l1_ratio)["w"].ravel()

    def split(x):
        if not use_l1:
            return x
        v = x[:wsize] - x[wsize : 2 * wsize]
        return np.concatenate([x[2 * wsize :], v]) if _b_first(theta0) else np.concatenate([v, x[2 * wsize :]])

    def fun(x):
        theta = unravel(split(x))
        f, g = objective.smooth(model, theta, X, y, sample_weight, affine, alpha, l1_ratio, fit_intercept,
                                    comm, share)
        gvec, _ = tree.ravel(g)
        if not use_l1:
            return f, gvec
        gw, gb = _parts(gvec, theta0, wsize)
        pq = x[: 2 * wsize]
        f += float(l1w @ (pq[:wsize] + pq[wsize:]))
        return f, np.concatenate([gw + l1w, -gw + l1w, gb])

    x0, _ = tree.ravel(theta0)
    bounds = None
    if use_l1:
        w0, b0 = _parts(x0, theta0, wsize)
        x0 = np.concatenate([np.maximum(w0, 0), np.maximum(-w0, 0), b0])
        bounds = np.zeros(x0.size, dtype=np.int32)
        bounds[: 2 * wsize] = 1  # p, q >= 0; the intercept is free

    def cb(x, it, f):
        if callback is not None:
            callback(unravel(split(x)), it, f)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        x, f, nit, success = _lbfgsb(fun, x0, bounds, max_iter=max_iter, gtol=tol, ftol=0.1 * tol * tol,
                                     memory=memory, callback=cb, checkpoint=checkpoint, resume=resume)
    theta = unravel(split(x))
    return Result(theta, max(nit, 1), bool(success and nit < max_iter), float(f))


_STATE = ("x", "f", "g", "wa", "iwa", "task", "ln_task", "lsave", "isave", "dsave")


def _lbfgsb(fun, x0, lower_zero, *, max_iter, gtol, ftol, memory, callback, checkpoint=None, resume=None,
            maxls=50):
    """Drive scipy's L-BFGS-B through its reverse-communication routine ``setulb``, as
    ``scipy.optimize.minimize`` does, keeping the whole solver state in arrays we own, so a
    checkpoint holds it and a resumed run continues bit for bit (scipy >= 1.15 signature).
    ``lower_zero``: per coordinate 1 for a bound ``x >= 0``, 0 for free (None: all free)."""
    from scipy.optimize import _lbfgsb

    n, m = x0.size, memory
    nbd = np.zeros(n, np.int32) if lower_zero is None else np.asarray(lower_zero, np.int32)
    low, up = np.zeros(n), np.zeros(n)
    st = {"x": np.array(x0, dtype=np.float64), "f": np.array(0.0), "g": np.zeros(n),
          "wa": np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m), "iwa": np.zeros(3 * n, np.int32),
          "task": np.zeros(2, np.int32), "ln_task": np.zeros(2, np.int32), "lsave": np.zeros(4, np.int32),
          "isave": np.zeros(44, np.int32), "dsave": np.zeros(29)}
    if lower_zero is not None:
        st["x"] = np.where(nbd == 1, np.maximum(st["x"], 0.0), st["x"])
    it, finished = 0, False
    if resume is not None:
        for k in _STATE:
            st[k] = np.array(resume[k], dtype=st[k].dtype)
        it, finished = int(resume["iteration"]), bool(resume["finished"])
    factr = ftol / np.finfo(float).eps
    task = st["task"]
    while not finished:
        _lbfgsb.setulb(m, st["x"], low, up, nbd, st["f"], st["g"], factr, gtol, st["wa"], st["iwa"], task,
                       st["lsave"], st["isave"], st["dsave"], maxls, st["ln_task"])
        if task[0] == 3:  # wants f and g at x
            f, g = fun(st["x"])
            st["f"] = np.array(f, dtype=np.float64)
            st["g"] = np.asarray(g, dtype=np.float64)
        elif task[0] == 1:  # a new iterate
            it += 1
            callback(st["x"], it, float(st["f"]))
            if it >= max_iter:
                task[0], task[1] = 5, 504  # STOP: max iterations
            elif checkpoint is not None and checkpoint.due(it):
                checkpoint.save(it, _snapshot(st, it, False))
        else:
            break
    if checkpoint is not None and not finished:
        checkpoint.save(it, _snapshot(st, it, True))
    return st["x"], float(st["f"]), it, task[0] == 4


def _snapshot(st, it, finished):
    return dict({k: st[k] for k in _STATE}, iteration=np.array(it), finished=np.array(finished))


def _b_first(theta0) -> bool:
    return sorted(theta0)[0] == "b"


def _parts(vec, theta0, wsize):
    """Split a raveled vector into (w part, b part); ravel orders keys sorted ("b" first)."""
    nb = vec.size - wsize
    if _b_first(theta0):
        return vec[nb:], vec[:nb]
    return vec[:wsize], vec[wsize:]
