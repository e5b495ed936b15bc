"""FTRL-Proximal with per-coordinate learning rates and L1/L2 (McMahan et al.,
"Ad Click Prediction: a View from the Trenches", KDD 2013, Algorithm 1).

``l1`` and ``l2`` may be scalars or trees (a zero entry leaves, say, the
intercept unregularised). It needs ``params`` in ``update``.

>>> import numpy as np
>>> from shardlearn.optim import apply_updates
>>> opt = ftrl(alpha=0.5, l1=1.0)
>>> p = {"w": np.array([0.0, 0.0])}
>>> u, s = opt.update({"w": np.array([0.5, -3.0])}, opt.init(p), p)
>>> np.round(apply_updates(p, u)["w"], 4).tolist()
[0.0, 0.25]
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from shardlearn.core import tree
from shardlearn.core.protocols import Transform


class FtrlState(NamedTuple):
    z: dict
    n: dict


def ftrl(alpha: float = 0.1, beta: float = 1.0, l1=0.0, l2=0.0) -> Transform:
    def init(params):
        return FtrlState(tree.zeros_like(params), tree.zeros_like(params))

    def update(grads, state, params):
        l1t, l2t = tree.broadcast_like(l1, params), tree.broadcast_like(l2, params)
        z, n, upd = {}, {}, {}
        for k, g in grads.items():
            w = params[k]
            n_new = state.n[k] + g * g
            sigma = (np.sqrt(n_new) - np.sqrt(state.n[k])) / alpha
            z[k] = state.z[k] + g - sigma * w
            n[k] = n_new
            shrunk = np.sign(z[k]) * np.maximum(np.abs(z[k]) - l1t[k], 0.0)
            w_new = -shrunk / ((beta + np.sqrt(n_new)) / alpha + l2t[k])
            upd[k] = w_new - w
        return upd, FtrlState(z, n)

    return Transform(init, update)
