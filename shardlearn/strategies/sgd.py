"""Stochastic gradient descent in one process: per example (``batch_size=1``) or
mini-batch, shuffled each epoch with a seed derived from ``(seed, epoch)`` so an
epoch's order does not depend on how the epochs were split across calls
(Robbins & Monro, 1951; Bottou, 2010). Any optimizer of ``shardlearn.optim``.

>>> import numpy as np
>>> from shardlearn import models, optim
>>> from shardlearn.strategies import precond
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 2)); y = X @ np.array([1.0, -2.0]) + 0.5
>>> m = models.get("linear"); a = precond.fit(X)
>>> opt = optim.sgd(0.05)
>>> r = fit(m, X, y, theta0=m.init(2), affine=a, optimizer=opt, batch_size=10, epochs=50, seed=0)
>>> np.round(precond.to_original(r.theta, a)["w"], 2).tolist()
[1.0, -2.0]
"""
from __future__ import annotations

import numpy as np

from shardlearn.optim.base import apply_updates
from shardlearn.strategies import objective
from shardlearn.strategies.result import Result


def epoch_order(n: int, epoch: int, seed: int | None, shuffle: bool) -> np.ndarray | None:
    """Row order of one epoch (None: natural order)."""
    if not shuffle:
        return None
    return np.random.default_rng([0 if seed is None else int(seed), int(epoch)]).permutation(n)


def fit(model, X, y, sample_weight=None, *, theta0, affine, optimizer, opt_state=None, alpha=0.0, l1_ratio=0.0,
        fit_intercept=True, batch_size=32, epochs=1, start_epoch=0, shuffle=True, seed=None, tol=None,
        n_iter_no_change=5, callback=None) -> Result:
    """Run ``epochs`` epochs from epoch number ``start_epoch``; stops early when the
    epoch's mean loss improves by less than ``tol`` for ``n_iter_no_change`` epochs."""
    n = X.shape[0]
    y = np.asarray(y)
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    theta = {k: np.array(v, dtype=np.float64) for k, v in theta0.items()}
    state = optimizer.init(theta) if opt_state is None else opt_state
    best, stall, done = np.inf, 0, 0
    for epoch in range(start_epoch, start_epoch + epochs):
        order = epoch_order(n, epoch, seed, shuffle)
        total = 0.0
        for lo in range(0, n, batch_size):
            idx = slice(lo, lo + batch_size) if order is None else order[lo : lo + batch_size]
            swb = None if sw is None else sw[idx]
            if swb is not None and swb.sum() <= 0:
                continue
            loss, g = objective.smooth(model, theta, X[idx], y[idx], swb, affine, alpha, l1_ratio, fit_intercept)
            updates, state = optimizer.update(g, state, theta)
            theta = apply_updates(theta, updates)
            total += loss * (min(lo + batch_size, n) - lo)
        done += 1
        mean_loss = total / max(n, 1)
        if callback is not None:
            callback(theta, epoch + 1)
        if tol is not None:
            stall = stall + 1 if mean_loss > best - tol else 0
            best = min(best, mean_loss)
            if stall >= n_iter_no_change:
                return Result(theta, done, True, float("nan"), state)
    return Result(theta, done, False, float("nan"), state)
