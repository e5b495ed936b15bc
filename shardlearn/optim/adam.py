"""Adam: bias-corrected first and second moment estimates (Kingma & Ba, 2015).

>>> import numpy as np
>>> opt = adam(0.1)
>>> p = {"w": np.array([1.0])}
>>> u, s = opt.update({"w": np.array([3.0])}, opt.init(p), p)
>>> np.round(u["w"], 6).tolist()
[-0.1]
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from shardlearn.core import tree
from shardlearn.core.protocols import Transform
from shardlearn.optim.base import chain
from shardlearn.optim.schedules import ScalarOrSchedule
from shardlearn.optim.sgd import scale_by_learning_rate


class AdamState(NamedTuple):
    count: np.ndarray
    mu: dict
    nu: dict


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Transform:
    def init(params):
        return AdamState(np.zeros((), np.int64), tree.zeros_like(params), tree.zeros_like(params))

    def update(grads, state, params=None):
        t = int(state.count) + 1
        mu = tree.tree_map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
        nu = tree.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, grads)
        c1, c2 = 1 - b1**t, 1 - b2**t
        out = tree.tree_map(lambda m, v: (m / c1) / (np.sqrt(v / c2) + eps), mu, nu)
        return out, AdamState(np.asarray(t, np.int64), mu, nu)

    return Transform(init, update)


def adam(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Transform:
    return chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(learning_rate))
