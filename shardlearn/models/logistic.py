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
    y = np.asarray(y, dtype=np.float64)
    return np.dot(p, np.logaddexp(0.0, z) - y * z), p * (expit(z) - y)


def loss_and_grad(params, X, y, sample_weight=None):
    return _glm.loss_and_grad(link, params, X, y, sample_weight)


MODEL = Model(
    "logistic", "classification", init, decision_function, predict, loss_and_grad,
    curvature=0.25, predict_proba=predict_proba,
)
