"""The per-example learning kernel: one compiled pass over rows (CSR or dense), each row
one prediction and one update of the coordinates it touches. No Python runs per row.

Losses (``LOSSES``): squared (``(p - y)^2 / 2``), logistic (``y`` in {0, 1}), hinge and
squared hinge (``y`` in {0, 1} as -1/+1), as ``shardlearn.models`` define them.

Update rules (``RULES``), each per coordinate ``i`` with the row's gradient
``g_i = h * dloss/dp * x_i`` (``h`` the row's importance weight):

- ``sgd``: ``w_i -= lr / t^power_t * g_i`` (``t``: the weight seen so far);
- ``adagrad``: ``G_i += g_i^2``, ``w_i -= lr * g_i / sqrt(G_i)`` (Duchi, Hazan & Singer 2011);
- ``normalized``: normalized adaptive gradient, the rule Vowpal Wabbit runs by default
  (Ross, Mineiro & Langford 2013, "Normalized online learning", algorithm NAG): ``s_i``
  is the largest ``|x_i|`` seen (a larger one first rescales ``w_i`` by ``s_i/|x_i|``, as NAG and
  Vowpal Wabbit do with the adaptive sum: the weight keeps its contribution ``w_i s_i``),
  ``N += h * sum_i x_i^2 / s_i^2``, ``G_i += h * (dloss/dp * x_i)^2``, and
  ``w_i -= rate_i * x_i * u`` with ``rate_i = lr * sqrt(t / N) / (s_i * sqrt(G_i))``: invariant
  to each feature's scale, so raw amounts in the millions need no standardising. The row's
  multiplier ``u`` is importance-invariant (Karampatziakis & Langford 2011, "Online
  importance weight aware updates"): the prediction moves as the gradient flow of the loss
  for time ``h * sum_i x_i^2 rate_i`` would move it (closed forms per loss), so a weight of 2
  equals the same row twice in infinitely small steps and no step jumps past the label;
  ``u -> h * dloss/dp`` as the step shrinks. Vowpal Wabbit's default, all three together;
- ``ftrl``: FTRL-Proximal (McMahan et al. 2013, "Ad click prediction"), with
  ``z_i``, ``n_i`` and ``w_i`` computed at touch time in closed form.

The linear schedule (``end``, ``span``; every rule but FTRL, whose rate sits in its closed
form): each row's rate is the rule's times ``min(1, max(0, (end - t) / span))`` at its clock
``t``, so it falls to 0 as the clock reaches ``end`` (the weight of a fit's rows); a fit
that knows its length anneals to its end, as averaging the iterates would without keeping
them (Defazio et al. 2023, "When, why and how much? Adaptive learning rate scheduling by
refinement").

Penalty ``alpha * ((1 - l1_ratio)/2 ||w||^2 + l1_ratio ||w||_1)`` per unit of weight, as
in the mean objective every strategy minimises, applied lazily: a coordinate catches up
on the decay and soft threshold of every row since it was last touched when a row touches
it again (and all at once in ``finalize``), so a row costs what it touches, never a dense
decay per row (Langford, Li & Zhang 2009, "Sparse online learning via truncated
gradient"; FTRL's closed form counts ``t * l1`` and ``t * l2`` itself); under the linear
schedule a catch-up's steps take the mean factor of the rows they stand for. The intercept
(the last coordinate) is never penalised.

>>> import numpy as np
>>> X = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]); y = np.array([1.0, 0.0, 1.0])
>>> st = new_state(2, "normalized")
>>> acc = run(st, X, y, None, np.arange(3), loss="logistic", rule="normalized", lr=0.5)
>>> round(float(acc[1]), 6), weights(st).shape   # progressive weight, (2 features + intercept)
(3.0, (3,))
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit

from shardlearn.kernels.core import (G, L, S, W, _base, _catch_up, _finalize, _ftrl_weight, _rows_csr, _rows_dense,
                                    _softmax_csr, _softmax_dense)
from shardlearn.kernels.prefetch import prefetch

__all__ = ["G", "L", "S", "W", "LOSSES", "MODEL_LOSS", "RULES", "catch_up", "finalize", "finalized", "new_state", "run",
           "weights"]

LOSSES = {"squared": 0, "logistic": 1, "hinge": 2, "squared_hinge": 3}
RULES = {"sgd": 0, "adagrad": 1, "normalized": 2, "ftrl": 3}
MODEL_LOSS = {"linear": "squared", "logistic": "logistic", "hinge": "hinge", "squared_hinge": "squared_hinge",
              "softmax": "softmax"}


def new_state(d: int, rule: str, classes: int = 1) -> dict:
    """Zero state for ``d`` features plus the intercept (last): ``ws[i]`` holds coordinate
    i's weight, sum of squared gradients, scale (FTRL: ``z``) and the clock it was last
    brought up to date at, side by side (32 bytes: a touched coordinate costs one cache
    line, as Vowpal Wabbit lays out its weights); ``scalars``: weight seen (the penalty
    clock) and the normalizer sum ``N``. A softmax over ``classes`` K > 1 holds K coordinates
    a feature, ``(i, k)`` at row ``i K + k`` (a row's classes side by side), and the K
    intercepts last: ``weights(state).reshape(d + 1, K)`` is ``[w; b]``."""
    return {"ws": np.zeros(((d + 1) * classes, 4)), "scalars": np.zeros(2)}


def weights(state: dict) -> np.ndarray:
    """The weights (intercept last): a view into the state."""
    return state["ws"][:, W]


def run(state: dict, X, y, sample_weight, order, *, loss: str, rule: str, lr: float, power_t: float = 0.0,
        beta: float = 1.0, l1: float = 0.0, l2: float = 0.0, fit_intercept: bool = True, scale=None,
        predictions=None, end: float = 0.0, span: float = 0.0, shift=None, classes: int = 1,
        held: bool = False) -> np.ndarray:
    """Learn from rows ``order`` of ``(X, y)`` in that order, updating ``state`` in place.
    ``scale`` multiplies each feature (a preconditioner; None: raw features). ``shift`` (dense
    rows with an intercept; None: none) centres them: each step is taken
    in the coordinates ``x - shift`` with the intercept ``b + shift . w``, then written back, so
    the state stays in the original coordinates and the optimum is the same for any shift,
    while a feature far from 0 (a year, an age) no longer fights the intercept (the virtual
    centring of Spark MLlib's dense fits, SPARK-34448; ``strategies/precond.py`` for L-BFGS). ``held``:
    the state keeps its intercept centred, ``b + shift . w``, and nothing is written back (the
    caller does, once: ``strategies.online.params``); as learning from ``X - shift``, without
    the copy. Hogwild's shared state is held: a write-back lost to another worker's overwrite
    of a weight moved the intercept by the shift times that weight's change (objective up to
    1.9958 x the optimum's in 8 seeds of 3 workers, 1.15 and 2.2 x in a CI run; held: at most
    1.0049; ``benchmarks/bench_centring.py --seeds``). Returns
    ``[sum of h * loss before each update (progressive loss), sum of h]``. ``predictions`` (an
    array as long as ``order``, or None) receives each row's score before its update; a row of
    weight 0 is not learned from, only scored then (read-only: a held-out example). ``end``,
    ``span``: the linear schedule (``span`` > 0): the rate falls from ``lr`` at clock
    ``end - span`` to 0 at clock ``end`` (the clock: the weight of the rows seen). ``loss="softmax"``
    learns a softmax over ``classes`` (the state's layout, ``new_state``) from class codes ``y``
    in ``0..classes-1``: each class's weights take the rule's step on its own ``dloss/dp_k``,
    the normalized rule's multiplier importance-invariant per class (``core._softmax_row``); its
    rows are not scored (``predictions`` must be None)."""
    y = np.ascontiguousarray(y, dtype=np.float64)
    h = np.ones(X.shape[0]) if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=np.float64)
    scale = np.zeros(0) if scale is None else np.ascontiguousarray(scale, dtype=np.float64)  # empty: raw
    shift = np.zeros(0) if shift is None else np.ascontiguousarray(shift, dtype=np.float64)
    order = np.ascontiguousarray(order, dtype=np.int64)
    out = np.zeros(2)
    preds = np.zeros(0) if predictions is None else predictions
    if loss == "softmax":
        _softmax(state, X, y, h, order, scale, shift, held, out, (RULES[rule], float(lr), float(power_t), float(beta),
                                                           float(l1), float(l2), bool(fit_intercept), float(end),
                                                           float(span), int(classes)), predictions)
        return out
    args = (state["ws"], state["scalars"], out, LOSSES[loss],
            RULES[rule], float(lr), float(power_t), float(beta), float(l1), float(l2), bool(fit_intercept), float(end),
            float(span))
    if sp.issparse(X):
        X = X.tocsr()
        _rows_csr(X.indptr, X.indices, _values(X.data), y, h, order, scale, *args, preds)
    else:
        _rows_dense(_values(X), y, h, order, scale, shift, bool(held), *args, preds)
    return out


def _softmax(state, X, y, h, order, scale, shift, held, out, args, predictions) -> None:
    classes = args[-1]
    if predictions is not None or state["ws"].shape[0] != (X.shape[1] + 1) * classes:
        raise ValueError(f"a softmax over {classes} classes learns from a state of {(X.shape[1] + 1) * classes} rows "
                         f"(got {state['ws'].shape[0]}) and scores no rows as it learns (predictions=None)")
    codes = y[order]
    bad = (codes < 0) | (codes >= classes) | (codes != np.floor(codes))
    if bad.any():
        raise ValueError(f"row {int(order[np.argmax(bad)])}: label {float(codes[np.argmax(bad)])!r} is not a class code "
                         f"0..{classes - 1}")
    if sp.issparse(X):
        X = X.tocsr()
        _softmax_csr(X.indptr, X.indices, _values(X.data), y, h, order, scale, state["ws"], state["scalars"], out,
                     *args)
    else:
        _softmax_dense(_values(X), y, h, order, scale, shift, bool(held), state["ws"], state["scalars"], out, *args)


def overflowed(out, loss: str, z, y, h) -> int | None:
    """None while ``run``'s progressive loss sum ``out[0]`` is finite; else the first row whose
    weighted loss at its score ``z`` (``run``'s ``predictions``) is not: the row where the
    weights' growth reached the loss (the last row where no single one shows it).

    >>> overflowed(np.array([np.inf, 3.0]), "squared", np.array([1.0, 1e200, np.nan]), np.zeros(3), np.ones(3))
    1
    """
    if np.isfinite(out[0]):
        return None
    with np.errstate(all="ignore"):
        m = z - y if loss == "squared" else (z if loss == "logistic" else 1.0 - (2.0 * y - 1.0) * z)
        bad = ~np.isfinite(h * (m * m if loss in ("squared", "squared_hinge") else m))
    return int(np.argmax(bad)) if bad.any() else len(z) - 1


def _values(a) -> np.ndarray:
    """``a`` as the kernel reads it: float32 or float64 as it is (a call over a few rows of a
    large matrix must not copy the matrix), anything else as float64, C-contiguous."""
    a = np.asarray(a)
    if a.dtype in (np.float32, np.float64) and a.flags.c_contiguous:
        return a
    return np.ascontiguousarray(a, dtype=np.float64)


def finalize(state: dict, *, rule: str, lr: float, power_t: float = 0.0, beta: float = 1.0, l1: float = 0.0,
             l2: float = 0.0, free=None, end: float = 0.0, span: float = 0.0, classes: int = 1) -> np.ndarray:
    """Bring every coordinate up to date with the penalty (one dense pass, when the weights
    are read: at an epoch's end); returns the weights ``w`` (intercept last). ``free``: the
    rows never penalised (None: the last ``classes``, the intercepts; a parameter-server slice
    names its own)."""
    _finalize_call(state, rule, lr, power_t, beta, l1, l2, end, span, _free(state, free, classes), np.zeros(0))
    return weights(state)


def finalized(state: dict, *, rule: str, lr: float, power_t: float = 0.0, beta: float = 1.0, l1: float = 0.0,
              l2: float = 0.0, free=None, end: float = 0.0, span: float = 0.0, classes: int = 1) -> np.ndarray:
    """The weights ``finalize`` would return, as a new array, with ``state`` left as it is (its
    clocks too, so where an epoch ends changes nothing): no copy of the whole state is made."""
    out = np.empty(state["ws"].shape[0])
    _finalize_call(state, rule, lr, power_t, beta, l1, l2, end, span, _free(state, free, classes), out)
    return out


def catch_up(state: dict, keys: np.ndarray, *, rule: str, lr: float, power_t: float = 0.0, beta: float = 1.0,
             l1: float = 0.0, l2: float = 0.0, free=None, end: float = 0.0, span: float = 0.0, classes: int = 1) -> None:
    """``finalize`` on coordinates ``keys`` only: each takes the penalty of the weight seen
    since it was last touched, in place, as the next row touching it would; a coordinate
    whose clock is at or past ``state``'s already has it (a clock never moves back, so
    ``state`` may carry an earlier clock than some rows: an exchange's start). ``free``: the
    rows never penalised (None: the last ``classes``, the intercepts). What local SGD's sparse averaging
    brings up to date (``strategies.sparse_average``) and what merged changes start from
    (``strategies.coded_changes.apply``, ``ps.kernel_shard``), at the cost of the keys."""
    ws = state["ws"]
    if ws.shape[0] == 0:
        return
    free = _free(state, free, classes)  # a few: looked up per key
    _catch_up_keys(RULES[rule], ws, np.asarray(state["scalars"], dtype=np.float64),
                   np.ascontiguousarray(keys, dtype=np.int64), float(lr), float(power_t), float(beta), float(l1),
                   float(l2), float(end), float(span), free)


@njit(cache=True, nogil=True)
def _catch_up_keys(rule, ws, scalars, keys, lr, power_t, beta, l1, l2, end, span, free):
    t = scalars[0]
    base = _base(rule, 1.0, power_t, t, scalars[1])
    for j in range(keys.size):
        if j + 8 < keys.size:  # far apart in a wide model: asked for ahead (``prefetch.py``)
            prefetch(ws, keys[j + 8])
        c = ws[keys[j]]
        if c[L] >= t or _among(keys[j], free):
            continue
        if rule == 3:
            c[W] = _ftrl_weight(c[S], c[G], lr, beta, l1 * t, l2 * t)
        else:
            _catch_up(rule, c, lr, power_t, base, t, l1, l2, end, span)


@njit(cache=True, inline="always")
def _among(k, few):
    for f in few:
        if f == k:
            return True
    return False


def _free(state, free, classes) -> np.ndarray:
    """The rows never penalised: ``free``, or the last ``classes`` (the intercepts)."""
    n = state["ws"].shape[0]
    return np.arange(max(n - classes, 0), n, dtype=np.int64) if free is None else np.asarray(free, dtype=np.int64)


def _finalize_call(state, rule, lr, power_t, beta, l1, l2, end, span, free, out):
    ws = state["ws"]
    if ws.shape[0] == 0:  # nothing to bring up to date (and no last row to leave unpenalised)
        return
    _finalize(RULES[rule], ws, np.asarray(state["scalars"], dtype=np.float64), float(lr), float(power_t), float(beta),
              float(l1), float(l2), float(end), float(span), free, out)
