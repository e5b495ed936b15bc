"""Stochastic gradient descent with optional (Nesterov) momentum.

Robbins & Monro (1951); heavy ball: Polyak (1964); Nesterov (1983), in the form
of Sutskever et al. (2013).

>>> import numpy as np
>>> opt = sgd(0.1, momentum=0.9)
>>> p = {"w": np.array([1.0])}
>>> u, s = opt.update({"w": np.array([1.0])}, opt.init(p), p)
>>> u["w"].tolist()
[-0.1]
"""
from __future__ import annotations

from typing import NamedTuple

from shardlearn.core import tree
from shardlearn.core.protocols import Transform
from shardlearn.optim.base import CountState, chain, count_init
from shardlearn.optim.schedules import ScalarOrSchedule, as_schedule


class TraceState(NamedTuple):
    trace: dict


def trace(decay: float, nesterov: bool = False) -> Transform:
    """Momentum: keep ``m = decay * m + g``; emit ``m`` (or ``g + decay * m``)."""

    def init(params):
        return TraceState(tree.zeros_like(params))

    def update(grads, state, params=None):
        m = tree.tree_map(lambda t, g: decay * t + g, state.trace, grads)
        out = tree.tree_map(lambda g, t: g + decay * t, grads, m) if nesterov else m
        return out, TraceState(m)

    return Transform(init, update)


def scale_by_learning_rate(learning_rate: ScalarOrSchedule) -> Transform:
    """Multiply by ``-lr(t)``: the descent step."""
    schedule = as_schedule(learning_rate)

    def update(grads, state, params=None):
        lr = schedule(int(state.count))
        return tree.scale(-lr, grads), CountState(state.count + 1)

    return Transform(count_init, update)


def sgd(learning_rate: ScalarOrSchedule, momentum: float = 0.0, nesterov: bool = False) -> Transform:
    if momentum:
        return chain(trace(momentum, nesterov), scale_by_learning_rate(learning_rate))
    return scale_by_learning_rate(learning_rate)
