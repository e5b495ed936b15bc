"""Linear regression with squared loss: ``mean(0.5 * (Xw + b - y)^2)``.

The least-squares model of Legendre and Gauss; with the penalty added by the
strategies it is ridge regression (Hoerl & Kennard, 1970).

>>> import numpy as np
>>> X = np.array([[0.0], [1.0], [2.0]]); y = np.array([1.0, 3.0, 5.0])
>>> p = {"w": np.array([2.0]), "b": np.array(1.0)}
>>> loss, g = loss_and_grad(p, X, y)
>>> float(loss), g["w"].tolist()
(0.0, [0.0])
"""
from __future__ import annotations

import numpy as np

from shardlearn.core.protocols import Model
from shardlearn.models import _glm

init = _glm.init
decision_function = _glm.scores
predict = _glm.scores


def link(z, y, p):
    r = z - np.asarray(y, dtype=np.float64)
    if r.ndim == 2:
        p = p[:, None]
    return 0.5 * np.sum(p * r * r), p * r


def loss_and_grad(params, X, y, sample_weight=None):
    return _glm.loss_and_grad(link, params, X, y, sample_weight)


MODEL = Model("linear", "regression", init, decision_function, predict, loss_and_grad, curvature=1.0)
