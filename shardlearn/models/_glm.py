"""What all linear models share: the score ``X @ w + b``, its backward pass,
sample-weight normalisation and per-example loss helpers.

The products run in the dtype of ``X`` (float32 data stays float32, no copy);
losses and gradients come back as float64.

>>> import numpy as np
>>> X = np.array([[1.0, 2.0], [3.0, 4.0]])
>>> scores({"w": np.array([1.0, 1.0]), "b": np.array(0.5)}, X).tolist()
[3.5, 7.5]
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _dtype(X):
    return X.dtype if X.dtype in (np.float32, np.float64) else np.float64


def scores(params: dict, X) -> np.ndarray:
    """``X @ w + b`` in float64, shape (n,) or (n, K)."""
    w = params["w"].astype(_dtype(X), copy=False)
    z = X @ w
    return np.asarray(z, dtype=np.float64) + params["b"]


def backward(X, dz: np.ndarray) -> dict:
    """Gradient of ``sum_i dz_i * score_i`` with respect to ``w`` and ``b``."""
    dt = _dtype(X)
    if sp.issparse(X):
        gw = np.asarray(X.T @ dz.astype(dt, copy=False), dtype=np.float64)
    else:
        gw = np.asarray(dz.astype(dt, copy=False).T @ X, dtype=np.float64).T
    return {"w": gw, "b": np.asarray(dz.sum(axis=0), dtype=np.float64)}


BLOCK_ROWS = 8192  # rows per block: the block stays in cache between the forward and backward product


def loss_and_grad(link, params: dict, X, y, sample_weight=None):
    """Weighted mean loss and its gradient for a per-example ``link(z, y, p) -> (loss, dz)``
    (``p``: weights summing to one; ``loss`` the weighted sum, ``dz`` its derivative in z).

    Dense ``X`` is processed in row blocks, each multiplied forward and backward while
    it is in cache, so one evaluation reads ``X`` from memory once.
    """
    n = X.shape[0]
    p = weights(sample_weight, n)
    y = np.asarray(y)
    if sp.issparse(X) or n <= BLOCK_ROWS or getattr(X, "one_pass", False):  # one_pass: rows on a device
        loss, dz = link(scores(params, X), y, p)
        return float(loss), backward(X, dz)
    total, grads = 0.0, {k: np.zeros(np.shape(v)) for k, v in params.items()}
    for lo in range(0, n, BLOCK_ROWS):
        rows = slice(lo, lo + BLOCK_ROWS)
        loss, dz = link(scores(params, X[rows]), y[rows], p[rows])
        g = backward(X[rows], dz)
        total += loss
        grads["w"] += g["w"]
        grads["b"] += g["b"]
    return float(total), grads


def weights(sample_weight, n: int) -> np.ndarray:
    """Per-example weights that sum to one (uniform when ``sample_weight`` is None)."""
    if sample_weight is None:
        return np.full(n, 1.0 / n) if n else np.zeros(0)
    sw = np.asarray(sample_weight, dtype=np.float64)
    total = sw.sum()
    if total <= 0:
        raise ValueError("sample weights must have a positive sum")
    return sw / total


def init(n_features: int, n_outputs: int = 1) -> dict:
    """Zero parameters: ``w`` (d,) and scalar ``b``, or (d, K) and (K,)."""
    if n_outputs == 1:
        return {"w": np.zeros(n_features), "b": np.zeros(())}
    return {"w": np.zeros((n_features, n_outputs)), "b": np.zeros(n_outputs)}


def signed_targets(y: np.ndarray, n_outputs: int) -> np.ndarray:
    """Class codes to +1/-1 targets: (n,) for one output, (n, K) one-vs-rest."""
    y = np.asarray(y)
    if n_outputs == 1:
        return 2.0 * (y > 0) - 1.0
    t = -np.ones((y.shape[0], n_outputs))
    t[np.arange(y.shape[0]), y.astype(np.intp)] = 1.0
    return t
