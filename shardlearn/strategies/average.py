"""One-shot model averaging: every worker solves the problem on its own shard
(L-BFGS), then the parameters are averaged once, weighted by each shard's sample
weight (Zinkevich et al., "Parallelized Stochastic Gradient Descent", 2010; Zhang,
Duchi & Wainwright, "Communication-Efficient Algorithms for Statistical
Optimization", 2013). One round of communication; exact only when the shards
agree, close for iid shards.

>>> import numpy as np
>>> from shardlearn import models
>>> from shardlearn.strategies import precond
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([1.0, 3.0, 5.0, 7.0])
>>> a = precond.fit(X); m = models.get("linear")
>>> r = fit(m, X, y, theta0=m.init(1), affine=a, tol=1e-10)
>>> round(float(precond.to_original(r.theta, a)["w"][0]), 6)
2.0
"""
from __future__ import annotations

import numpy as np

from shardlearn.strategies import lbfgs, objective
from shardlearn.strategies.result import Result


def fit(model, X, y, sample_weight=None, *, theta0, affine, comm=None, share=1.0, **options) -> Result:
    local = lbfgs.fit(model, X, y, sample_weight, theta0=theta0, affine=affine, **options) if X.shape[0] else None
    theta = local.theta if local is not None else {k: np.array(v, dtype=np.float64) for k, v in theta0.items()}
    if comm is None or comm.size == 1:
        return local
    _, avg = objective.allreduce_mean(comm, 0.0, theta, share)
    n_iter = int(comm.allreduce(np.array([local.n_iter if local else 0.0]), op="max")[0])
    return Result(avg, max(n_iter, 1), bool(local.converged) if local else True, float("nan"))
