"""Per-example learning over the parameter server: a worker's batch step for
``strategies.ps_sgd.fit`` when the shards hold the kernel's state (``ps.kernel_shard``).

For each batch the worker pulls, for the keys its rows touch, the intercept's key and the
scalars' key, the kernel's state rows (weight, sum of squared gradients, scale, clock);
runs the compiled kernel (``kernels.sgd``) over the batch one row at a time on that local
copy; and pushes the change (``kernels.delta``), which the shards merge. So the adaptive
per-coordinate state lives on the shard with its weight, a step costs what the batch
touches, and under ``bsp`` (pushes held per clock) the shards compute exactly what the
allreduce ``bsp`` workers do (``strategies.online`` with ``sync="changes"``); ``ssp`` and
``asp`` merge each change as it arrives (asynchronous SGD with additive pushes: Dean et
al. 2012; Li et al. 2014, "Scaling distributed machine learning with the parameter server").

>>> # runs on a worker group; see tests/test_ps_online.py
"""
from __future__ import annotations

import numpy as np

from shardlearn.kernels import delta, sgd as kernel
from shardlearn.kernels.sgd import G, W
from shardlearn.strategies.ps_sgd import batch_columns


class Learner:
    """``learner(client, Xb, yb, swb, held) -> progressive loss sum`` of one batch, for a model
    of ``d`` features: keys ``0..d-1`` the weights, ``d`` the intercept, ``d + 1`` the scalars."""

    def __init__(self, d: int, loss: str, fit_intercept: bool, rule: str, lr: float, power_t: float = 0.0,
                 l1: float = 0.0, l2: float = 0.0):
        self.extra = np.array([d, d + 1], dtype=np.int64)
        self.loss, self.fit_intercept = loss, fit_intercept
        self.opts = dict(rule=rule, lr=lr, power_t=power_t, l1=l1, l2=l2)

    def __call__(self, client, Xb, yb, swb, held) -> float:
        keys, Xc = batch_columns(Xb)
        keys = np.concatenate([keys, self.extra])
        rows = client.wait(client.pull(keys))
        state = {"ws": np.ascontiguousarray(rows[:-1]), "scalars": rows[-1, [W, G]].copy()}
        before, s0 = state["ws"].copy(), state["scalars"].copy()
        out = kernel.run(state, Xc, yb, swb, np.arange(Xc.shape[0]), loss=self.loss,
                         fit_intercept=self.fit_intercept, **self.opts)
        change = np.zeros((keys.size, 4))
        change[:-1] = delta.change(before, state["ws"], self.opts["rule"])
        change[-1, [W, G]] = state["scalars"] - s0
        client.wait(client.push(keys, change, **held))
        return float(out[0])
