"""Predicting under the per-example kernel's state (``kernels/sgd.py``) without learning:
the score a row would get as the next row learned, read-only.

A coordinate's stored weight may lag the penalty clock (the lazy L1/L2 catch-up happens
when a row touches it) and, under the normalized rule, a larger value than its scale has
seen rescales it first. ``scores`` applies both to a copy of each touched state row, so
a prediction between two learned rows changes nothing: learning with or without
predictions in between gives the same weights.

>>> import numpy as np
>>> from shardlearn.kernels import sgd
>>> st = sgd.new_state(2, "normalized")
>>> _ = sgd.run(st, np.array([[1.0, 2.0]]), np.array([1.0]), None, np.arange(1), loss="logistic", rule="normalized",
...             lr=0.5, l2=0.1)
>>> before = st["ws"].copy()
>>> s = scores(st, np.array([[1.0, 2.0]]), rule="normalized", lr=0.5, l2=0.1)
>>> bool(s[0] > 0), bool((st["ws"] == before).all())
(True, True)
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from shardlearn.kernels.core import _scores_csr
from shardlearn.kernels.sgd import RULES, _values


def scores(state: dict, X, *, rule: str, lr: float, power_t: float = 0.0, beta: float = 1.0, l1: float = 0.0,
           l2: float = 0.0, fit_intercept: bool = True, end: float = 0.0, span: float = 0.0) -> np.ndarray:
    """The scores ``w . x (+ b)`` of CSR rows ``X`` under ``state``, with each touched weight
    brought up to date with the penalty (and, normalized, its scale) as learning would, but
    without writing: the state is left exactly as it was."""
    X = X if getattr(X, "format", None) == "csr" else sp.csr_matrix(X)  # CSR arrays as they are (a request's
    # rows, ``online/instances.py``: no second check)
    out = np.empty(X.shape[0])
    _scores_csr(X.indptr, X.indices, _values(X.data), state["ws"], np.asarray(state["scalars"], dtype=np.float64),
                out, RULES[rule], float(lr), float(power_t), float(beta), float(l1), float(l2), bool(fit_intercept),
                float(end), float(span))
    return out
