"""Elastic-net penalties under any descent rule, as one composite step.

The L2 part enters the gradient; the L1 part is a soft threshold applied after
the descent step, at the *step that rule took on that coordinate*: ``lr`` for
plain SGD (ISTA; Tsuruoka et al., 2009), ``lr / sqrt(G_j)`` for AdaGrad (the
composite mirror-descent update of Duchi, Hazan & Singer, JMLR 2011, eq. 24),
``lr / (sqrt(v_j) + eps)`` for Adam, and ``lr / (1 - beta)`` for (Nesterov)
momentum, whose steady-state step is that long. A threshold at the plain ``lr``
under an adaptive rule moves the fixed point away from the elastic-net optimum
(the defect of issue 12); at the rule's own step the fixed point is the optimum's:
``g_j + l1_j * sign(w_j) = 0`` where ``w_j != 0`` and ``|g_j| <= l1_j`` where it is 0.

The strengths live in the state (``PenaltyState``), not in a closure: they may be
per-coordinate arrays (zero for the intercept; ``alpha * l1_ratio / s_j`` in
preconditioned coordinates), and a parameter-server shard that updates only the
touched coordinates slices them with the rest of the state.

>>> import numpy as np
>>> from shardlearn.optim.adagrad import adagrad
>>> rule = penalized(adagrad(0.5), adagrad_steps(0.5), l1=0.3)
>>> p = {"w": np.array([0.0, 0.0])}
>>> s = rule.init(p)
>>> for _ in range(3000):    # min 0.5 (w - c)^2 + 0.3 |w|: soft_threshold(c, 0.3)
...     u, s = rule.update({"w": p["w"] - np.array([1.0, 0.2])}, s, p)
...     p = {"w": p["w"] + u["w"]}
>>> np.round(p["w"], 6).tolist()
[0.7, 0.0]
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from shardlearn.core.protocols import Transform
from shardlearn.optim.regularizers import soft_threshold
from shardlearn.optim.schedules import ScalarOrSchedule, as_schedule


class PenaltyState(NamedTuple):
    l1: dict  # per key: a 0-d strength or one per coordinate
    l2: dict


def strengths(value, params: dict) -> dict:
    """A scalar or a tree of strengths as a tree of float arrays (0-d for a scalar)."""
    if isinstance(value, dict):
        return {k: np.asarray(value[k], dtype=np.float64) for k in params}
    return {k: np.asarray(float(value)) for k in params}


def penalized(descent: Transform, steps: Callable, l1=0.0, l2=0.0) -> Transform:
    """``descent`` on ``g + l2 * w``, then ``w <- soft_threshold(w, step_j * l1_j)``.
    ``steps(descent_state)`` gives the step the rule just took, a scalar or a tree."""

    def init(params):
        return PenaltyState(strengths(l1, params), strengths(l2, params)), descent.init(params)

    def update(grads, state, params):
        pen, inner = state
        g = {k: grads[k] + pen.l2[k] * params[k] for k in grads}
        u, inner = descent.update(g, inner, params)
        eta = steps(inner)
        out = {}
        for k in u:
            step = eta[k] if isinstance(eta, dict) else eta
            out[k] = soft_threshold(params[k] + u[k], step * pen.l1[k]) - params[k]
        return out, (pen, inner)

    return Transform(init, update)


def _last_lr(schedule, count_state) -> float:
    return schedule(int(count_state.count) - 1)  # the count was advanced by the step just taken


def sgd_steps(learning_rate: ScalarOrSchedule, momentum: float = 0.0) -> Callable:
    """Plain SGD steps ``lr``; with momentum ``beta`` the steady-state step ``lr / (1 - beta)``."""
    schedule = as_schedule(learning_rate)
    if momentum:
        return lambda state: _last_lr(schedule, state[1]) / (1.0 - momentum)
    return lambda state: _last_lr(schedule, state)


def adagrad_steps(learning_rate: ScalarOrSchedule, eps: float = 1e-10) -> Callable:
    schedule = as_schedule(learning_rate)
    return lambda state: {k: _last_lr(schedule, state[1]) / (np.sqrt(a) + eps)
                          for k, a in state[0].sum_of_squares.items()}


def adam_steps(learning_rate: ScalarOrSchedule, b2: float = 0.999, eps: float = 1e-8) -> Callable:
    schedule = as_schedule(learning_rate)

    def steps(state):
        moments, count = state
        c2 = 1.0 - b2 ** int(moments.count)
        return {k: _last_lr(schedule, count) / (np.sqrt(v / c2) + eps) for k, v in moments.nu.items()}

    return steps
