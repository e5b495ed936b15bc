"""FTRL-Proximal with per-coordinate learning rates and L1/L2 (McMahan et al.,
"Ad Click Prediction: a View from the Trenches", KDD 2013, Algorithm 1).

``l1`` is a penalty *per round*, as in the objective ``mean(loss) + l1 ||w||_1``
every shardlearn solver minimises: after ``t`` updates ``z`` sums ``t`` gradients,
so the threshold on ``|z|`` is ``t * l1`` (and ``l2`` likewise ``t * l2``) (the L1 handling of regularized dual
averaging, Xiao 2010; McMahan, AISTATS 2011, sec. 3). A fixed ``l1`` threshold
would fade against the growing ``z`` and end away from the elastic-net optimum.

``l1`` and ``l2`` may be scalars or trees (a zero entry leaves, say, the
intercept unregularised); they are kept in the state, so a parameter-server
shard slices per-coordinate strengths with ``z`` and ``n``. It needs ``params``
in ``update``.

>>> import numpy as np
>>> from shardlearn.optim import apply_updates
>>> opt = ftrl(alpha=0.5, l1=1.0)
>>> p = {"w": np.array([0.0, 0.0])}
>>> u, s = opt.update({"w": np.array([0.5, -3.0])}, opt.init(p), p)
>>> np.round(apply_updates(p, u)["w"], 4).tolist()
[0.0, 0.25]
>>> int(s.count)
1
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from shardlearn.core import tree
from shardlearn.core.protocols import Transform
from shardlearn.optim.proximal import strengths


class FtrlState(NamedTuple):
    count: np.ndarray  # updates so far (0-d): the L1 threshold is count * l1
    z: dict
    n: dict
    l1: dict
    l2: dict


def ftrl(alpha: float = 0.1, beta: float = 1.0, l1=0.0, l2=0.0) -> Transform:
    def init(params):
        return FtrlState(np.zeros((), np.int64), tree.zeros_like(params), tree.zeros_like(params),
                         strengths(l1, params), strengths(l2, params))

    def update(grads, state, params):
        rounds = int(state.count) + 1
        l1t, l2t = state.l1, state.l2
        z, n, upd = {}, {}, {}
        for k, g in grads.items():
            w = params[k]
            n_new = state.n[k] + g * g
            sigma = (np.sqrt(n_new) - np.sqrt(state.n[k])) / alpha
            z[k] = state.z[k] + g - sigma * w
            n[k] = n_new
            shrunk = np.sign(z[k]) * np.maximum(np.abs(z[k]) - rounds * l1t[k], 0.0)
            w_new = -shrunk / ((beta + np.sqrt(n_new)) / alpha + rounds * l2t[k])
            upd[k] = w_new - w
        return upd, FtrlState(np.asarray(rounds, np.int64), z, n, state.l1, state.l2)

    return Transform(init, update)
