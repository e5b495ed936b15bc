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
from numba import njit

from shardlearn.data.vwtext import _POW10, NO_LABEL, _parse
from shardlearn.kernels.core import _scores_csr
from shardlearn.kernels.sgd import RULES, _values


def scores(state: dict, X, *, rule: str, lr: float, power_t: float = 0.0, beta: float = 1.0, l1: float = 0.0,
           l2: float = 0.0, fit_intercept: bool = True) -> np.ndarray:
    """The scores ``w . x (+ b)`` of CSR rows ``X`` under ``state``, with each touched weight
    brought up to date with the penalty (and, normalized, its scale) as learning would, but
    without writing: the state is left exactly as it was."""
    X = X if getattr(X, "format", None) == "csr" else sp.csr_matrix(X)  # CSR arrays as they are (a request's
    # rows, ``online/instances.py``: no second check)
    out = np.empty(X.shape[0])
    _scores_csr(X.indptr, X.indices, _values(X.data), state["ws"], np.asarray(state["scalars"], dtype=np.float64),
                out, RULES[rule], float(lr), float(power_t), float(beta), float(l1), float(l2), bool(fit_intercept))
    return out


def text_scores(state: dict, buf: bytes, rows: int, bits: int, *, rule: str, lr: float, power_t: float = 0.0,
                beta: float = 1.0, l1: float = 0.0, l2: float = 0.0, fit_intercept: bool = True):
    """The scores of ``rows`` lines of Vowpal Wabbit text in ``buf``, parsed (``data/vwtext.py``'s
    parser) and scored as ``scores`` does, in one compiled call: what a served one-row request
    costs is then the HTTP layer's, not a dozen numpy calls'. None when any line needs the
    full path (a line that does not parse or is empty, a number beyond the fast exact path):
    ``vwtext.parse`` then says what is wrong, or reads the number exactly.

    >>> from shardlearn.kernels import sgd
    >>> st = sgd.new_state(1 << 4, "normalized")
    >>> st["ws"][:, 0] = 0.25
    >>> text_scores(st, b"|a x:2\\n|a x:1 y\\n", 2, 4, rule="normalized", lr=0.5).tolist()
    [0.75, 0.75]
    >>> text_scores(st, b"|a x:one\\n", 1, 4, rule="normalized", lr=0.5) is None
    True
    """
    out = np.empty(rows)
    ok = _text_scores(np.frombuffer(buf, dtype=np.uint8), int(bits), _POW10, state["ws"],
                      np.asarray(state["scalars"], dtype=np.float64), out, RULES[rule], float(lr), float(power_t),
                      float(beta), float(l1), float(l2), bool(fit_intercept))
    return out if ok else None


@njit(cache=True)
def _text_scores(buf, bits, pow10, ws, scalars, out, rule, lr, power_t, beta, l1, l2, intercept):
    lines, tokens = 1, 1
    for c in buf:
        lines += c == 10
        tokens += c == 32 or c == 9 or c == 124
    tokens += lines
    labels, weights, indptr = np.empty(lines), np.empty(lines), np.zeros(lines + 1, dtype=np.int64)
    indices, values = np.empty(tokens, dtype=np.int32), np.empty(tokens)
    line_of, ends, status = np.empty(lines, dtype=np.int64), np.empty(lines, dtype=np.int64), np.empty(lines, np.int8)
    culprit, slow = np.zeros((lines, 2), dtype=np.int64), np.empty((tokens, 3), dtype=np.int64)
    letters = np.empty(tokens, dtype=np.uint8)
    n, nnz, nslow = _parse(buf, bits, pow10, labels, weights, indptr, indices, values, line_of, ends, status, culprit,
                           slow, letters)
    if n != out.shape[0] or nslow > 0:
        return False
    for r in range(n):
        if status[r] > NO_LABEL:
            return False
    _scores_csr(indptr, indices, values, ws, scalars, out, rule, lr, power_t, beta, l1, l2, intercept)
    return True
