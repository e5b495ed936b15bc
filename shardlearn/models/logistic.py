"""Binary logistic regression: ``mean(log(1 + exp(z)) - y z)`` with y in {0, 1}.

Cox (1958); the regularised form trained here is the one of Spark MLlib and
scikit-learn's SGDClassifier.

>>> import numpy as np
>>> p = {"w": np.zeros(1), "b": np.zeros(())}
>>> loss, g = loss_and_grad(p, np.array([[1.0], [-1.0]]), np.array([1, 0]))
>>> round(loss, 6), g["w"].tolist()
(0.693147, [-0.5])
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit

from shardlearn.core.protocols import Model
from shardlearn.models import _glm

init = _glm.init
decision_function = _glm.scores


def predict_proba(params, X):
    """Probability of class 1, shape (n,)."""
    return expit(decision_function(params, X))


def predict(params, X):
    return (decision_function(params, X) > 0).astype(np.intp)


def link(z, y, p):
    """Weighted loss and its derivative in ``z``, from one ``exp(-|z|)``: ``log(1 + e^z) =
    max(z, 0) + log1p(e)`` and the sigmoid ``1 / (1 + e)`` or ``e / (1 + e)`` by the sign of z
    (a third cheaper than ``logaddexp`` and ``expit``, which take an exponential each)."""
    y = np.asarray(y, dtype=np.float64)
    e = np.exp(-np.abs(z))
    loss = np.log1p(e)
    loss += np.maximum(z, 0.0)
    loss -= y * z
    s = 1.0 / (1.0 + e)
    dz = np.where(z >= 0, s, e * s)
    dz -= y
    dz *= p
    return np.dot(p, loss), dz


def loss_and_grad(params, X, y, sample_weight=None):
    return _glm.loss_and_grad(link, params, X, y, sample_weight)


MODEL = Model(
    "logistic", "classification", init, decision_function, predict, loss_and_grad,
    curvature=0.25, predict_proba=predict_proba,
)
