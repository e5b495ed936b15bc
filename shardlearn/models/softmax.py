"""Multinomial logistic (softmax) regression over K classes, y = class codes 0..K-1.

The loss is ``mean(logsumexp(z) - z[y])`` with one weight column per class, as in
scikit-learn's multinomial LogisticRegression.

>>> import numpy as np
>>> p = init(2, 3)
>>> loss, g = loss_and_grad(p, np.eye(2), np.array([0, 2]))
>>> round(loss, 6), g["w"].shape
(1.098612, (2, 3))
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, softmax

from shardlearn.core.protocols import Model
from shardlearn.models import _glm

decision_function = _glm.scores


def init(n_features, n_outputs=2):
    return _glm.init(n_features, n_outputs)


def predict_proba(params, X):
    """Class probabilities, shape (n, K)."""
    return softmax(decision_function(params, X), axis=1)


def predict(params, X):
    return np.argmax(decision_function(params, X), axis=1)


def link(z, y, p):
    y = np.asarray(y, dtype=np.intp)
    lse = logsumexp(z, axis=1)
    rows = np.arange(z.shape[0])
    dz = np.exp(z - lse[:, None])
    dz[rows, y] -= 1.0
    return np.dot(p, lse - z[rows, y]), dz * p[:, None]


def loss_and_grad(params, X, y, sample_weight=None):
    return _glm.loss_and_grad(link, params, X, y, sample_weight)


MODEL = Model(
    "softmax", "classification", init, decision_function, predict, loss_and_grad,
    curvature=0.5, predict_proba=predict_proba, n_outputs=lambda k: k,
)
