"""The protocols the packages agree on.

A ``Transform`` is a pair of pure functions (optax's shape): ``init(params) ->
state`` and ``update(grads, state, params) -> (updates, state)``. A ``Model``
bundles the pure functions of one model kind.

>>> import numpy as np
>>> t = Transform(init=lambda p: (), update=lambda g, s, p=None: (g, s))
>>> t.update({"w": np.ones(2)}, t.init(None))[0]["w"].tolist()
[1.0, 1.0]
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple


class Transform(NamedTuple):
    """A gradient transformation: optimizers, regularizers and clipping alike."""

    init: Callable[[dict], Any]
    update: Callable[..., tuple[dict, Any]]


class Model(NamedTuple):
    """The pure functions of one model kind.

    - ``init(n_features, n_outputs) -> params``
    - ``decision_function(params, X) -> scores`` (n,) or (n, K)
    - ``predict(params, X) -> values`` (regression) or class codes
    - ``loss_and_grad(params, X, y, sample_weight) -> (loss, grads)``: weighted mean
      of the per-example loss and its gradient (penalty not included)
    - ``curvature``: a bound on the loss's second derivative in the score, used to
      pick the diagonal preconditioner
    - ``task``: "regression" or "classification"
    """

    name: str
    task: str
    init: Callable
    decision_function: Callable
    predict: Callable
    loss_and_grad: Callable
    curvature: float
    predict_proba: Callable | None = None
    n_outputs: Callable[[int], int] = lambda n_classes: 1
