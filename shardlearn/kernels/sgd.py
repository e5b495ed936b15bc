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

Penalty ``alpha * ((1 - l1_ratio)/2 ||w||^2 + l1_ratio ||w||_1)`` per unit of weight, as
in the mean objective every strategy minimises, applied lazily: a coordinate catches up
on the decay and soft threshold of every row since it was last touched when a row touches
it again (and all at once in ``finalize``), so a row costs what it touches, never a dense
decay per row (Langford, Li & Zhang 2009, "Sparse online learning via truncated
gradient"; FTRL's closed form counts ``t * l1`` and ``t * l2`` itself). The intercept
(the last coordinate) is never penalised.

>>> import numpy as np
>>> X = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]); y = np.array([1.0, 0.0, 1.0])
>>> st = new_state(2, "normalized")
>>> acc = run(st, X, y, None, np.arange(3), loss="logistic", rule="normalized", lr=0.5)
>>> round(float(acc[1]), 6), weights(st).shape   # progressive weight, (2 features + intercept)
(3.0, (3,))
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from numba import njit

from shardlearn.kernels.invariant import invariant_scale

LOSSES = {"squared": 0, "logistic": 1, "hinge": 2, "squared_hinge": 3}
RULES = {"sgd": 0, "adagrad": 1, "normalized": 2, "ftrl": 3}
MODEL_LOSS = {"linear": "squared", "logistic": "logistic", "hinge": "hinge", "squared_hinge": "squared_hinge"}
W, G, S, L = 0, 1, 2, 3  # a coordinate's slots: weight, sum of squared gradients, scale (FTRL: z), clock


def new_state(d: int, rule: str) -> dict:
    """Zero state for ``d`` features plus the intercept (last): ``ws[i]`` holds coordinate
    i's weight, sum of squared gradients, scale (FTRL: ``z``) and the clock it was last
    brought up to date at, side by side (32 bytes: a touched coordinate costs one cache
    line, as Vowpal Wabbit lays out its weights); ``scalars``: weight seen (the penalty
    clock) and the normalizer sum ``N``."""
    return {"ws": np.zeros((d + 1, 4)), "scalars": np.zeros(2)}


def weights(state: dict) -> np.ndarray:
    """The weights (intercept last): a view into the state."""
    return state["ws"][:, W]


@njit(cache=True, inline="always")
def _dloss(loss, p, y):
    """``(loss, dloss/dp)`` of one row."""
    if loss == 0:
        r = p - y
        return 0.5 * r * r, r
    if loss == 1:
        if p > 0:
            e = math.exp(-p)
            return p + math.log1p(e) - y * p, 1.0 / (1.0 + e) - y
        e = math.exp(p)
        return math.log1p(e) - y * p, e / (1.0 + e) - y
    t = 2.0 * y - 1.0
    m = 1.0 - t * p
    if m <= 0:
        return 0.0, 0.0
    if loss == 2:
        return m, -t
    return m * m, -2.0 * t * m


@njit(cache=True, inline="always")
def _rate(rule, c, lr, power_t, base):
    """The step size per unit gradient of coordinate row ``c`` now (0 before its first
    gradient); ``base``: ``lr * sqrt(t / N)`` for the normalized rule, ``lr / t^power_t`` for sgd."""
    if rule == 0:
        return base
    if c[G] <= 0:
        return 0.0
    if rule == 1:
        return lr / math.sqrt(c[G])
    return base / (c[S] * math.sqrt(c[G]))


@njit(cache=True, inline="always")
def _base(rule, lr, power_t, t, nsum):
    if rule == 0:
        return lr / (t ** power_t) if power_t > 0 and t > 0 else lr
    if rule == 2:
        return lr * math.sqrt(t / nsum) if nsum > 0 else 0.0
    return lr


@njit(cache=True, inline="always")
def _decay(x, k):
    """``(1 - x)^k``, the L2 shrink of ``k`` rows at rate ``x``: a ``pow`` per touched coordinate
    was a third of a penalised epoch, so the usual case (``x`` and ``k x`` small) is a few
    multiply-adds of the series of ``exp(k log(1 - x))``, exact to rounding (the first term
    left out is below 1e-16 relative); else that exp and log1p (not ``pow`` of a rounded ``1 - x``)."""
    if x >= 1.0:
        return 0.0
    if x < 1e-4:
        u = -k * x * (1.0 + x * (0.5 + x * (1.0 / 3.0 + x * 0.25)))  # k log(1 - x)
        if u > -1e-3:
            return 1.0 + u * (1.0 + u * (0.5 + u * (1.0 / 6.0 + u * (1.0 / 24.0))))
        return math.exp(u)
    return math.exp(k * math.log1p(-x))


@njit(cache=True, inline="always")
def _catch_up(rule, c, lr, power_t, base, t, l1, l2):
    """Coordinate row ``c`` takes the penalty steps of the weight seen since it was last touched."""
    k = t - c[L]
    c[L] = t
    if k <= 0 or (l1 == 0 and l2 == 0) or c[W] == 0:
        return
    eta = _rate(rule, c, lr, power_t, base)
    if eta <= 0:
        return
    v = c[W]
    if l2 > 0:
        v = v * _decay(eta * l2, k)
    if l1 > 0:
        cut = eta * l1 * k
        v = v - cut if v > cut else (v + cut if v < -cut else 0.0)
    c[W] = v


@njit(cache=True, inline="always")
def _ftrl_weight(z, n, lr, beta, l1, l2):
    if abs(z) <= l1:
        return 0.0
    return -(z - math.copysign(l1, z)) / ((beta + math.sqrt(n)) / lr + l2)


@njit(cache=True, inline="always")
def _step(rule, c, gi, lr, power_t, beta, base, t, l1, l2):
    """Coordinate row ``c`` takes gradient ``gi``."""
    if rule == 3:
        n_old = c[G]
        sigma = (math.sqrt(n_old + gi * gi) - math.sqrt(n_old)) / lr
        c[S] += gi - sigma * c[W]
        c[G] = n_old + gi * gi
        c[W] = _ftrl_weight(c[S], c[G], lr, beta, l1 * t, l2 * t)
        return
    if rule != 0:
        c[G] += gi * gi
    c[W] -= _rate(rule, c, lr, power_t, base) * gi


@njit(cache=True, inline="always")
def _touch(rule, c, x, lr, power_t, beta, base, t, l1, l2):
    """Before predicting: coordinate row ``c`` with value ``x`` rescales (normalized) and catches
    up; returns its term of the normalizer sum."""
    norm = 0.0
    if rule == 2:
        ax = abs(x)
        if ax > c[S]:
            if c[S] > 0:
                c[W] *= c[S] / ax
            c[S] = ax
        if c[S] > 0:
            norm = (x / c[S]) ** 2
    if rule == 3:
        c[W] = _ftrl_weight(c[S], c[G], lr, beta, l1 * t, l2 * t)
    else:
        _catch_up(rule, c, lr, power_t, base, t, l1, l2)
    return norm


@njit(cache=True, inline="always")
def _tick(scalars, hr, rule, lr, power_t):
    """A row of weight ``hr`` moves the clock: ``(t, the base rate of its catch-ups)``. The clock and the
    normalizer are read and written at every row, not kept in registers for a call: Hogwild's
    workers share them (``scalars`` in /dev/shm); one process gets the same numbers."""
    t = scalars[0] + hr
    scalars[0] = t
    return t, _base(rule, lr, power_t, t, scalars[1])


@njit(cache=True, inline="always")
def _row_gradient(scalars, hr, norm, loss, p, yr, out, rule, lr, power_t, t):
    """After the prediction ``p``: the row's normalizer term ``norm`` joins ``N``, its loss the
    progressive sums; returns its importance-weighted ``dloss/dp`` and the base rate of its steps."""
    nsum = scalars[1] + hr * norm
    scalars[1] = nsum
    lv, g = _dloss(loss, p, yr)
    out[0] += hr * lv
    out[1] += hr
    return g * hr, _base(rule, lr, power_t, t, nsum)


@njit(cache=True, inline="always")
def _step_intercept(rule, c, g, lr, power_t, beta, base, t):
    """The intercept: a feature of value 1 (scale 1), never penalised."""
    if rule != 3:
        c[S] = 1.0
    _step(rule, c, g, lr, power_t, beta, base, t, 0.0, 0.0)


@njit(cache=True, inline="always")
def _rate_normalized(c, x, h, dl, base, rates, j):
    """Pass two of a normalized row: coordinate row ``c`` adds ``h * (dloss/dp * x)^2`` to its
    squared-gradient sum (importance counted as ``h`` rows, not ``h^2``), keeps its step per unit
    of the row's multiplier, ``x * rate``, in ``rates[j]`` and returns its term ``x^2 * rate`` of
    the prediction's change per unit."""
    c[G] += h * (dl * x) ** 2
    q = base / (c[S] * math.sqrt(c[G])) if c[G] > 0 and c[S] > 0 else 0.0
    rates[j] = x * q
    return x * x * q


@njit(cache=True)
def _rows_csr(indptr, indices, data, y, h, order, scale, ws, scalars, out, loss, rule, lr, power_t, beta, l1, l2,
              intercept, preds):
    d = ws.shape[0] - 1
    width = 0
    for r in order:  # the widest row this call reads (not the matrix's: a call may read a few rows of many)
        width = max(width, indptr[r + 1] - indptr[r])
    rates = np.empty(width + 1)
    for j in range(order.shape[0]):
        r = order[j]
        hr = h[r]
        if hr <= 0:
            continue
        t, base = _tick(scalars, hr, rule, lr, power_t)
        lo, hi = indptr[r], indptr[r + 1]
        p = ws[d, W] if intercept else 0.0
        norm = 1.0 if intercept else 0.0
        for k in range(lo, hi):
            i = indices[k]
            x = data[k] * scale[i]
            norm += _touch(rule, ws[i], x, lr, power_t, beta, base, t, l1, l2)
            p += ws[i, W] * x
        if preds.shape[0]:
            preds[j] = p
        g, base = _row_gradient(scalars, hr, norm, loss, p, y[r], out, rule, lr, power_t, t)
        if g == 0:
            continue
        if rule == 2:
            ppu = 0.0
            for k in range(lo, hi):
                i = indices[k]
                ppu += _rate_normalized(ws[i], data[k] * scale[i], hr, g / hr, base, rates, k - lo)
            if intercept:
                ws[d, S] = 1.0
                ppu += _rate_normalized(ws[d], 1.0, hr, g / hr, base, rates, hi - lo)
            u = invariant_scale(loss, p, y[r], hr, ppu)
            for k in range(lo, hi):
                ws[indices[k], W] -= rates[k - lo] * u
            if intercept:
                ws[d, W] -= rates[hi - lo] * u
            continue
        for k in range(lo, hi):
            i = indices[k]
            _step(rule, ws[i], g * data[k] * scale[i], lr, power_t, beta, base, t, l1, l2)
        if intercept:
            _step_intercept(rule, ws[d], g, lr, power_t, beta, base, t)


@njit(cache=True)
def _rows_dense(X, y, h, order, scale, ws, scalars, out, loss, rule, lr, power_t, beta, l1, l2, intercept, preds):
    d = ws.shape[0] - 1
    rates = np.empty(d + 1)
    for j in range(order.shape[0]):
        r = order[j]
        hr = h[r]
        if hr <= 0:
            continue
        t, base = _tick(scalars, hr, rule, lr, power_t)
        p = ws[d, W] if intercept else 0.0
        norm = 1.0 if intercept else 0.0
        for i in range(d):
            x = X[r, i] * scale[i]
            norm += _touch(rule, ws[i], x, lr, power_t, beta, base, t, l1, l2)
            p += ws[i, W] * x
        if preds.shape[0]:
            preds[j] = p
        g, base = _row_gradient(scalars, hr, norm, loss, p, y[r], out, rule, lr, power_t, t)
        if g == 0:
            continue
        if rule == 2:
            ppu = 0.0
            for i in range(d):
                x = X[r, i] * scale[i]
                rates[i] = 0.0
                if x != 0:
                    ppu += _rate_normalized(ws[i], x, hr, g / hr, base, rates, i)
            if intercept:
                ws[d, S] = 1.0
                ppu += _rate_normalized(ws[d], 1.0, hr, g / hr, base, rates, d)
            u = invariant_scale(loss, p, y[r], hr, ppu)
            for i in range(d):
                ws[i, W] -= rates[i] * u
            if intercept:
                ws[d, W] -= rates[d] * u
            continue
        for i in range(d):
            x = X[r, i] * scale[i]
            if x != 0:
                _step(rule, ws[i], g * x, lr, power_t, beta, base, t, l1, l2)
        if intercept:
            _step_intercept(rule, ws[d], g, lr, power_t, beta, base, t)


@njit(cache=True)
def _finalize(rule, ws, scalars, lr, power_t, beta, l1, l2, free):
    t, nsum = scalars[0], scalars[1]
    base = _base(rule, lr, power_t, t, nsum)
    skip = np.zeros(ws.shape[0], dtype=np.bool_)
    skip[free] = True
    for i in range(ws.shape[0]):
        if skip[i]:
            continue
        if rule == 3:
            ws[i, W] = _ftrl_weight(ws[i, S], ws[i, G], lr, beta, l1 * t, l2 * t)
        else:
            _catch_up(rule, ws[i], lr, power_t, base, t, l1, l2)


def run(state: dict, X, y, sample_weight, order, *, loss: str, rule: str, lr: float, power_t: float = 0.0,
        beta: float = 1.0, l1: float = 0.0, l2: float = 0.0, fit_intercept: bool = True, scale=None,
        predictions=None) -> np.ndarray:
    """Learn from rows ``order`` of ``(X, y)`` in that order, updating ``state`` in place.
    ``scale`` multiplies each feature (a preconditioner; None: raw features). Returns
    ``[sum of h * loss before each update (progressive loss), sum of h]``. ``predictions`` (an
    array as long as ``order``, or None) receives each row's score before its update (NaN for
    rows of weight 0: skipped)."""
    d = X.shape[1]
    y = np.ascontiguousarray(y, dtype=np.float64)
    h = np.ones(X.shape[0]) if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=np.float64)
    scale = np.ones(d) if scale is None else np.ascontiguousarray(scale, dtype=np.float64)
    order = np.ascontiguousarray(order, dtype=np.int64)
    out = np.zeros(2)
    preds = np.zeros(0) if predictions is None else predictions
    if predictions is not None:
        preds[:] = np.nan
    args = (state["ws"], state["scalars"], out, LOSSES[loss],
            RULES[rule], float(lr), float(power_t), float(beta), float(l1), float(l2), bool(fit_intercept))
    if sp.issparse(X):
        X = X.tocsr()
        _rows_csr(X.indptr, X.indices, _values(X.data), y, h, order, scale, *args, preds)
    else:
        _rows_dense(_values(X), y, h, order, scale, *args, preds)
    return out


def _values(a) -> np.ndarray:
    """``a`` as the kernel reads it: float32 or float64 as it is (a call over a few rows of a
    large matrix must not copy the matrix), anything else as float64, C-contiguous."""
    a = np.asarray(a)
    if a.dtype in (np.float32, np.float64) and a.flags.c_contiguous:
        return a
    return np.ascontiguousarray(a, dtype=np.float64)


def finalize(state: dict, *, rule: str, lr: float, power_t: float = 0.0, beta: float = 1.0, l1: float = 0.0,
             l2: float = 0.0, free=None) -> np.ndarray:
    """Bring every coordinate up to date with the penalty (one dense pass, when the weights
    are read: at an epoch's end); returns the weights ``w`` (intercept last). ``free``: the
    rows never penalised (None: the last, the intercept; a parameter-server slice names its own)."""
    ws = state["ws"]
    free = np.array([ws.shape[0] - 1] if free is None else free, dtype=np.int64)
    _finalize(RULES[rule], ws, np.asarray(state["scalars"], dtype=np.float64), float(lr), float(power_t), float(beta),
              float(l1), float(l2), free)
    return weights(state)
