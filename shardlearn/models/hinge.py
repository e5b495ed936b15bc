"""Linear support vector machines: hinge ``max(0, 1 - t z)`` and squared hinge
``max(0, 1 - t z)^2`` with t = +1/-1 (Cortes & Vapnik, 1995; the squared form is
LIBLINEAR's L2-loss SVM, Fan et al., 2008). More than two classes are trained
one-vs-rest in one joint objective: the per-example loss sums over the K outputs.

>>> import numpy as np
>>> p = {"w": np.array([1.0]), "b": np.zeros(())}
>>> loss, g = HINGE.loss_and_grad(p, np.array([[0.5], [2.0]]), np.array([1, 1]))
>>> loss, g["w"].tolist()
(0.25, [-0.25])
"""
from __future__ import annotations

from functools import partial

import numpy as np

from shardlearn.core.protocols import Model
from shardlearn.models import _glm

decision_function = _glm.scores
init = _glm.init


def predict(params, X):
    z = decision_function(params, X)
    if z.ndim == 1:
        return (z > 0).astype(np.intp)
    return np.argmax(z, axis=1)


def link(z, y, p, squared=False):
    t = _glm.signed_targets(y, 1 if z.ndim == 1 else z.shape[1])
    margin = np.maximum(0.0, 1.0 - t * z)
    if z.ndim == 2:
        p = p[:, None]
    if squared:
        return np.sum(p * margin * margin), -2.0 * p * t * margin
    return np.sum(p * margin), -p * t * (margin > 0)


def _loss_and_grad(params, X, y, sample_weight=None, *, squared=False):
    return _glm.loss_and_grad(partial(link, squared=squared), params, X, y, sample_weight)


def _n_outputs(k):
    return 1 if k <= 2 else k


HINGE = Model(
    "hinge", "classification", init, decision_function, predict,
    partial(_loss_and_grad, squared=False), curvature=1.0, n_outputs=_n_outputs,
)
SQUARED_HINGE = Model(
    "squared_hinge", "classification", init, decision_function, predict,
    partial(_loss_and_grad, squared=True), curvature=2.0, n_outputs=_n_outputs,
)
