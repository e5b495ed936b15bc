"""Full-batch proximal gradient descent with Nesterov acceleration, backtracking
and adaptive restart: FISTA (Beck & Teboulle, 2009) with the restart of
O'Donoghue & Candes (2015). L1 is applied exactly by soft thresholding.

>>> import numpy as np
>>> from shardlearn import models
>>> from shardlearn.strategies import precond
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([1.0, 3.0, 5.0, 7.0])
>>> a = precond.fit(X)
>>> r = fit(models.get("linear"), X, y, theta0=models.get("linear").init(1), affine=a, tol=1e-10, max_iter=500)
>>> round(float(precond.to_original(r.theta, a)["w"][0]), 6)
2.0
"""
from __future__ import annotations

import numpy as np

from shardlearn.core import tree
from shardlearn.core.tree import pack, unpack
from shardlearn.optim.regularizers import soft_threshold
from shardlearn.strategies import objective
from shardlearn.strategies.result import Result


def fit(model, X, y, sample_weight=None, *, theta0, affine, alpha=0.0, l1_ratio=0.0, fit_intercept=True,
        max_iter=100, tol=1e-6, callback=None, comm=None, share=1.0, checkpoint=None, resume=None) -> Result:
    """``checkpoint`` saves the iterate, momentum point, step size and momentum weight when due;
    ``resume`` (a checkpoint's arrays) continues from them exactly."""
    def f(theta, grad=True):
        return objective.smooth(model, theta, X, y, sample_weight, affine, alpha, l1_ratio, fit_intercept,
                                    comm, share, grad)

    l1w = objective.l1_weights(theta0, affine, alpha, l1_ratio)

    def prox(theta, step):
        return {k: soft_threshold(v, step * l1w[k]) for k, v in theta.items()}

    def total(theta, fval):
        return fval + objective.l1_value(theta, l1w)

    x = {k: np.array(v, dtype=np.float64) for k, v in theta0.items()}
    yk, t, lip, start = x, 1.0, 2.0 * model.curvature, 1
    if resume is not None:
        x, yk = unpack("x", resume), unpack("y", resume)
        t, lip, start = float(resume["t"]), float(resume["lip"]), int(resume["iteration"]) + 1
    fx, _ = f(x, grad=False)
    converged, it = bool(resume is not None and resume["converged"]), start - 1

    def save(i, done):
        checkpoint.save(i, dict(pack("x", x), **pack("y", yk), t=np.array(t), lip=np.array(lip),
                                iteration=np.array(i), converged=np.array(done)))

    for it in range(start, max_iter + 1 if not converged else start):
        fy, gy = f(yk)
        while True:
            x_new = prox({k: yk[k] - gy[k] / lip for k in yk}, 1.0 / lip)
            diff = {k: x_new[k] - yk[k] for k in yk}
            f_new, _ = f(x_new, grad=False)  # a trial point: its value only
            if f_new <= fy + tree.vdot(gy, diff) + 0.5 * lip * tree.vdot(diff, diff) + 1e-12 * abs(fy):
                break
            lip *= 2.0
        step_norm = max(float(np.max(np.abs(v), initial=0.0)) for v in diff.values()) * lip
        if callback is not None:
            callback(x_new, it, total(x_new, f_new))
        if total(x_new, f_new) > total(x, fx):  # restart momentum when the objective goes up
            t, yk = 1.0, x
        else:
            t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            yk = {k: x_new[k] + (t - 1.0) / t_new * (x_new[k] - x[k]) for k in x}
            x, fx, t = x_new, f_new, t_new
            lip *= 0.9
            converged = step_norm <= tol
            if converged:
                break
        if checkpoint is not None and it < max_iter and checkpoint.due(it):
            save(it, False)
    if checkpoint is not None:
        save(it, converged)
    return Result(x, it, converged, total(x, fx))
