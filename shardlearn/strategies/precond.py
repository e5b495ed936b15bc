"""Affine preconditioning: optimise in standardised coordinates, report in the
original ones, without changing the objective.

With ``w = v / s`` and ``b = c - m . w`` the score ``X w + b`` equals
``((X - m) / s) v + c``, so the solver sees centred, unit-scale features while
``X`` is never copied or densified: only the parameters are mapped. ``s_j`` is
``sqrt(var_j + ridge / curvature)``, the square root of the diagonal of the
objective's Hessian up to the loss curvature, so both badly scaled features and
a strong ridge term are evened out (Jacobi preconditioning; see Nocedal &
Wright, *Numerical Optimization*, 2006, ch. 5).

>>> import numpy as np
>>> X = np.array([[1.0, 100.0], [3.0, 300.0]])
>>> a = fit(X, None, curvature=1.0)
>>> a.mean.tolist(), a.scale.tolist()
([2.0, 200.0], [1.0, 100.0])
>>> p = {"w": np.array([1.0, 0.01]), "b": np.array(0.5)}
>>> back = to_original(to_scaled(p, a), a)
>>> np.allclose(back["w"], p["w"]) and np.allclose(back["b"], p["b"])
True
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from shardlearn.kernels import columns

CHUNK_ROWS = 2048  # small blocks: the square of a block stays in cache


class Affine(NamedTuple):
    mean: np.ndarray  # (d,), zeros when not centring
    scale: np.ndarray  # (d,), positive


def identity(n_features: int) -> Affine:
    return Affine(np.zeros(n_features), np.ones(n_features))


def moments(X, sample_weight=None) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted column sums of x and x^2, and the weight total (for later allreduce)."""
    if hasattr(X, "blocks"):  # a streamed shard: one pass, block by block
        return _summed(moments(Xb) for Xb, _ in X.blocks())
    n = X.shape[0]
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if sp.issparse(X) and X.format == "csr":  # one compiled read, float64 sums
        s1, s2 = columns.column_sums(X, sw)
        return s1, s2, float(sw.sum())
    if sp.issparse(X):
        s1 = np.asarray(X.T @ sw, dtype=np.float64).ravel()
        sq = sp.csr_matrix((X.data.astype(np.float64) ** 2, X.indices, X.indptr), shape=X.shape)  # shares indices
        s2 = np.asarray(sq.T @ sw, dtype=np.float64).ravel()
        return s1, s2, float(sw.sum())
    # blocks in X's own dtype (float32 data stays float32), sums accumulated in float64:
    # the preconditioner needs the scale of each feature, not its last digit
    d = X.shape[1]
    s1, s2 = np.zeros(d), np.zeros(d)
    dt = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    swd = sw.astype(dt)
    for i in range(0, n, CHUNK_ROWS):
        block = np.asarray(X[i : i + CHUNK_ROWS], dtype=dt)
        wb = swd[i : i + CHUNK_ROWS]
        s1 += wb @ block
        s2 += wb @ (block * block)
    return s1, s2, float(sw.sum())


def _summed(parts):
    """Element-wise sums of tuples of per-block statistics."""
    total = None
    for part in parts:
        total = list(part) if total is None else [t + p for t, p in zip(total, part)]
    return tuple(total)


def presence_moments(X, sample_weight=None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted column sums of ``x^2`` and of the rows where ``x != 0`` (for ``where_present``)."""
    if hasattr(X, "blocks"):
        return _summed(presence_moments(Xb) for Xb, _ in X.blocks())
    n = X.shape[0]
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if sp.issparse(X):
        data = np.asarray(X.data, dtype=np.float64)
        nz = sp.csr_matrix(((data != 0).astype(np.float64), X.indices, X.indptr), shape=X.shape)
        sq = sp.csr_matrix((data**2, X.indices, X.indptr), shape=X.shape)
        return np.asarray(sq.T @ sw).ravel(), np.asarray(nz.T @ sw).ravel()
    s2, cnt = np.zeros(X.shape[1]), np.zeros(X.shape[1])
    for i in range(0, n, CHUNK_ROWS):
        block = np.asarray(X[i : i + CHUNK_ROWS], dtype=np.float64)
        wb = sw[i : i + CHUNK_ROWS]
        s2 += wb @ (block * block)
        cnt += wb @ (block != 0)
    return s2, cnt


def cancelled(sums: np.ndarray, total: float) -> np.ndarray:
    """Entries of concatenated ``[s1, s2]`` (``moments``, summed) whose column's variance,
    ``s2 / n - (s1 / n)^2``, is under 1% of ``s2 / n``: a spread small beside the mean (a
    timestamp, a year), which a float32 sum of squares loses to cancellation (its rounding,
    ~1e-7 of ``s2``, would swamp the variance), or not a number at all (a sum past float32's
    range). Both of such a column's entries.

    >>> X = np.array([[1e9, 0.0], [1e9 + 2.0, 2.0]])  # spreads 1 and 1, means 1e9 + 1 and 1
    >>> s1, s2, n = moments(X)
    >>> cancelled(np.concatenate([s1, s2]), n).tolist()
    [True, False, True, False]
    >>> cancelled(np.array([8.5e20, np.inf]), 500.0).tolist()  # nanosecond timestamps' squares, past float32
    [True, True]
    """
    d = sums.size // 2
    n = total if total > 0 else 1.0
    with np.errstate(invalid="ignore", over="ignore"):  # a sum past float32's range: inf - inf, marked too
        raw = sums[d:] / n
        col = ~(np.isfinite(raw) & (raw - (sums[:d] / n) ** 2 >= 1e-2 * raw))
    return np.concatenate([col, col])


def from_moments(s1, s2, total, curvature=1.0, ridge=0.0, center=True) -> Affine:
    mean = s1 / total if total > 0 else np.zeros_like(s1)
    var = np.maximum(s2 / total - mean * mean, 0.0) if center else s2 / max(total, 1e-300)
    scale = np.sqrt(var + ridge / curvature)
    scale[~(scale > 1e-12 * max(1.0, float(scale.max(initial=0.0))))] = 1.0
    return Affine(mean if center else np.zeros_like(mean), scale)


def fit(X, sample_weight=None, curvature=1.0, ridge=0.0, center=True) -> Affine:
    """Statistics of ``X`` for the preconditioner. ``center`` needs an intercept."""
    return from_moments(*moments(X, sample_weight), curvature=curvature, ridge=ridge, center=center)


def centre(X, sample_weight=None, fit_intercept: bool = True, comm=None) -> np.ndarray | None:
    """The per-example kernel's ``shift`` (``kernels.sgd.run``): the weighted column means of
    dense rows (in memory, or a stream's from its survey pass: ``Stream.moments``), or None
    (sparse rows keep their zeros; no intercept, nothing to take the shift back). Any shift
    leaves the optimum where it is, so each worker takes its own shard's; with ``comm``, every
    worker's rows together, one allreduce (Hogwild's one held state needs one). A column whose
    mean is within a tenth of its root mean square keeps 0 (centred already; or a one-hot column
    seen in under 1% of rows, whose zeros a shift would make nonzero: a softmax's dense row
    visits only its nonzero and shifted columns, K coordinates each: kddcup99's 118 columns, 32
    shifted, took 6.6 s for 2 epochs of 100k rows in one process, 25 s with all shifted,
    ``benchmarks/results/softmax``); None where every
    column keeps 0 (as D1: the centred steps cost ~10% more a row).

    >>> centre(np.array([[1.0, 100.0, -1.0], [3.0, 300.0, 1.01]])).tolist()   # the last: centred already
    [2.0, 200.0, 0.0]
    >>> centre(sp.csr_matrix(np.eye(2))) is None, centre(np.array([[-1.0], [1.02]])) is None
    (True, True)
    """
    if not fit_intercept or sp.issparse(X) or (X.shape[0] == 0 and comm is None):
        return None
    if hasattr(X, "blocks"):  # a stream: its survey pass's sums (``data.stream.survey``), if its blocks were dense
        if getattr(X, "moments", None) is None:
            return None
        s1, s2, total = X.moments
    else:
        s1, s2, total = moments(X, sample_weight)
    if comm is not None:
        d = s1.shape[0]
        summed = comm.allreduce(np.concatenate([s1, s2, [total]]))
        s1, s2, total = summed[:d], summed[d : 2 * d], float(summed[-1])
    if not total > 0:
        return None
    mean = s1 / total
    far = np.abs(mean) > 0.1 * np.sqrt(s2 / total)
    return np.where(far, mean, 0.0) if far.any() else None


def _col(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    return a if w.ndim == 1 else a[:, None]


def to_original(theta: dict, a: Affine) -> dict:
    w = theta["w"] / _col(a.scale, theta["w"])
    return {"w": w, "b": theta["b"] - a.mean @ w}


def to_scaled(params: dict, a: Affine) -> dict:
    w = params["w"]
    return {"w": w * _col(a.scale, w), "b": params["b"] + a.mean @ w}


def grad_to_scaled(grads: dict, a: Affine) -> dict:
    """Chain rule for the map above: gradients in original space -> in scaled space."""
    gw, gb = grads["w"], grads["b"]
    centred = gw - (a.mean * gb if gw.ndim == 1 else np.outer(a.mean, gb))
    return {"w": centred / _col(a.scale, gw), "b": gb}
