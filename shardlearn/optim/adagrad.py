"""AdaGrad: per-coordinate steps ``lr / sqrt(sum g^2)`` (Duchi, Hazan & Singer, 2011).

>>> import numpy as np
>>> opt = adagrad(1.0)
>>> p = {"w": np.array([0.0, 0.0])}
>>> u, s = opt.update({"w": np.array([2.0, -0.5])}, opt.init(p), p)
>>> np.round(u["w"], 6).tolist()
[-1.0, 1.0]
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from shardlearn.core import tree
from shardlearn.core.protocols import Transform
from shardlearn.optim.base import chain
from shardlearn.optim.schedules import ScalarOrSchedule
from shardlearn.optim.sgd import scale_by_learning_rate


class AdagradState(NamedTuple):
    sum_of_squares: dict


def scale_by_rss(initial_accumulator: float = 0.0, eps: float = 1e-10) -> Transform:
    def init(params):
        return AdagradState(tree.tree_map(lambda p: np.full(np.shape(p), initial_accumulator), params))

    def update(grads, state, params=None):
        acc = tree.tree_map(lambda a, g: a + g * g, state.sum_of_squares, grads)
        out = tree.tree_map(lambda g, a: g / (np.sqrt(a) + eps), grads, acc)
        return out, AdagradState(acc)

    return Transform(init, update)


def adagrad(learning_rate: ScalarOrSchedule, initial_accumulator: float = 0.0, eps: float = 1e-10) -> Transform:
    return chain(scale_by_rss(initial_accumulator, eps), scale_by_learning_rate(learning_rate))
