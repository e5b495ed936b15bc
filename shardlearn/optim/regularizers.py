"""Regularisers as transforms: L2 (weight decay added to the gradient), L1 as a
proximal step (soft thresholding, as in ISTA: Daubechies et al., 2004; and
Tsuruoka et al., 2009 for SGD), and clipping by global norm (Pascanu et al., 2013).

Strengths may be scalars or trees (per-coordinate, e.g. zero for the intercept).

>>> import numpy as np
>>> p = {"w": np.array([0.05, -1.0])}
>>> t = prox_l1(1.0, learning_rate=0.1)
>>> u, _ = t.update({"w": np.array([0.0, 0.0])}, t.init(p), p)
>>> np.round(p["w"] + u["w"], 6).tolist()
[0.0, -0.9]
"""
from __future__ import annotations

import numpy as np

from shardlearn.core import tree
from shardlearn.core.protocols import Transform
from shardlearn.optim.base import CountState, EmptyState, count_init
from shardlearn.optim.schedules import ScalarOrSchedule, as_schedule


def add_l2(strength) -> Transform:
    """Add ``strength * params`` to the gradient (the gradient of ``strength/2 ||p||^2``)."""

    def update(grads, state, params):
        s = tree.broadcast_like(strength, params)
        return {k: g + s[k] * params[k] for k, g in grads.items()}, state

    return Transform(lambda params: EmptyState(), update)


def soft_threshold(x, threshold):
    return np.sign(x) * np.maximum(np.abs(x) - threshold, 0.0)


def prox_l1(strength, learning_rate: ScalarOrSchedule) -> Transform:
    """Put after the descent step: turn ``p + u`` into ``soft_threshold(p + u, lr * strength)``."""
    schedule = as_schedule(learning_rate)

    def update(updates, state, params):
        lr = schedule(int(state.count))
        s = tree.broadcast_like(strength, params)
        out = {k: soft_threshold(params[k] + u, lr * s[k]) - params[k] for k, u in updates.items()}
        return out, CountState(state.count + 1)

    return Transform(count_init, update)


def clip_by_global_norm(max_norm: float) -> Transform:
    def update(grads, state, params=None):
        norm = tree.global_norm(grads)
        if norm <= max_norm:
            return grads, state
        return tree.scale(max_norm / norm, grads), state

    return Transform(lambda params: EmptyState(), update)
