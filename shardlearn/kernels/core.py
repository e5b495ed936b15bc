"""The compiled core of the per-example kernel: every numba function that calls another.

numba's on-disk cache (``cache=True``) keys a compiled function on its *own* source
file: a function that inlines one from another file keeps running the old code after
that other file changes (a predict kernel kept the old rescale rule this way). So every
compiled function that calls another lives in this one file; ``sgd.py`` (learning),
``predict.py`` (scores) and ``delta.py`` are the plain-Python faces over it. The rules,
the losses and the papers behind them are described in ``sgd.py``.

>>> import numpy as np
>>> ws = np.zeros((2, 4)); sc = np.zeros(2); out = np.zeros(2)
>>> _rows_dense(np.array([[1.0]]), np.array([1.0]), np.ones(1), np.arange(1), np.ones(1), np.zeros(0), False, ws, sc,
...             out, 1, 2, 0.5, 0.0, 1.0, 0.0, 0.0, True, 0.0, 0.0, np.zeros(0))
>>> round(float(out[0]), 6), float(sc[0])   # log 2 before the first update; one row seen
(0.693147, 1.0)
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from shardlearn.kernels.prefetch import AHEAD_ROWS, AHEAD_STATE, ahead, prefetch2, state_of

W, G, S, L = 0, 1, 2, 3  # a coordinate's slots: weight, sum of squared gradients, scale (FTRL: z), clock


@njit(cache=True, inline="always")
def _flow(loss, p, y, a):
    """The prediction after gradient flow ``dp/dtau = -dloss/dp`` for time ``a`` from ``p``:
    the importance-invariant update (Karampatziakis & Langford 2011, "Online importance
    weight aware updates"), where a row of weight ``h`` moves the prediction as ``h`` rows
    of weight 1 taken in infinitely small steps would, so no step overshoots the label."""
    if loss == 0:
        return y + (p - y) * math.exp(-a)
    if loss == 1:
        if y != 0.0 and y != 1.0:  # soft labels: the linear step
            return p - a * (1.0 / (1.0 + math.exp(-p)) - y)
        sg = 1.0 if y == 1.0 else -1.0
        z0 = sg * p  # z moves up: z + e^z grows by a (the flow of log(1 + e^-z))
        if z0 > 30.0:
            return p + sg * a * math.exp(-z0)
        e0 = math.exp(z0)
        dz = a / (1.0 + e0)  # Newton's first step from 0 (right of the root: the function is convex)
        c = z0 + e0 + a
        if c > 1.0 and z0 + dz > math.log(c):
            dz = math.log(c) - z0
        for _ in range(50):
            f = dz + e0 * math.expm1(dz) - a
            step = f / (1.0 + e0 * math.exp(dz))
            dz -= step
            if abs(step) <= 1e-15 * (1.0 + abs(dz)):
                break
        return p + sg * dz
    t = 2.0 * y - 1.0
    m = 1.0 - t * p
    if m <= 0:
        return p
    if loss == 2:
        return p + t * min(a, m)
    return p + t * m * (1.0 - math.exp(-2.0 * a))


@njit(cache=True, inline="always")
def invariant_scale(loss, p, y, h, ppu):
    """The multiplier ``u`` of the normalized step ``w_i -= rate_i * x_i * u``: the flow for
    time ``h * ppu`` turned back into a gradient scale (``h * dloss/dp`` as the step nears 0)."""
    if ppu <= 0:
        return 0.0
    return (p - _flow(loss, p, y, h * ppu)) / ppu


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
def _anneal(end, span, t):
    """The linear schedule's factor of the rate at clock ``t``: 1 until ``end - span``, then
    straight down to 0 at ``end`` (``span`` 0: no schedule, always 1). A last iterate annealed
    to 0 over the run gets what averaging the iterates would (Defazio et al. 2023, "When, why
    and how much? Adaptive learning rate scheduling by refinement"), with no state to keep."""
    if span <= 0:
        return 1.0
    return min(1.0, max(0.0, (end - t) / span))


@njit(cache=True, inline="always")
def _anneal_area(end, span, t):
    """The integral of ``_anneal`` from clock 0 to ``t`` (``span`` > 0)."""
    s0 = end - span
    if t <= s0:
        return t
    if t >= end:
        return s0 + 0.5 * span
    return s0 + 0.5 * (span - (end - t) ** 2 / span)


@njit(cache=True, inline="always")
def _anneal_mean(end, span, a, b):
    """The mean factor over the rows of clocks ``(a, b]``: the lazy penalty of a coordinate
    untouched since ``a`` takes each row's rate, not the rate now."""
    if span <= 0:
        return 1.0
    if b <= a:
        return _anneal(end, span, b)
    return (_anneal_area(end, span, b) - _anneal_area(end, span, a)) / (b - a)


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
def _catch_up(rule, c, lr, power_t, base1, t, l1, l2, end, span):
    """Coordinate row ``c`` takes the penalty steps of the weight seen since it was last touched
    (``base1``: the rule's base rate per unit of ``lr`` at clock ``t``; under the linear schedule
    each step at its row's rate: the gap's mean factor)."""
    last = c[L]
    k = t - last
    if k <= 0:  # never back: a Hogwild worker's clock may trail the row's (strategies/hogwild.py)
        return
    c[L] = t
    if (l1 == 0 and l2 == 0) or c[W] == 0:
        return
    m = lr * _anneal_mean(end, span, last, t)
    eta = _rate(rule, c, m, power_t, base1 * m)
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
def _touch(rule, c, x, lr, power_t, beta, base1, t, l1, l2, end, span):
    """Before predicting: coordinate row ``c`` with value ``x`` rescales (normalized) and catches
    up (``base1``: the base rate per unit of ``lr``); returns its term of the normalizer sum."""
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
        _catch_up(rule, c, lr, power_t, base1, t, l1, l2, end, span)
    return norm


@njit(cache=True, inline="always")
def _tick(scalars, hr, rule, power_t):
    """A row of weight ``hr`` moves the clock: ``(t, the base rate of its catch-ups per unit of
    the learning rate)``. The clock and the
    normalizer are read and written at every row (``scalars``; a Hogwild worker's own pair,
    ``strategies.hogwild.Counters``)."""
    t = scalars[0] + hr
    scalars[0] = t
    return t, _base(rule, 1.0, power_t, t, scalars[1])


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


@njit(cache=True, nogil=True)  # a stream parses its next block in another thread meanwhile
def _rows_csr(indptr, indices, data, y, h, order, scale, ws, scalars, out, loss, rule, lr, power_t, beta, l1, l2,
              intercept, end, span, preds):
    d = ws.shape[0] - 1
    width = 0
    for r in order:  # the widest row this call reads (not the matrix's: a call may read a few rows of many)
        width = max(width, indptr[r + 1] - indptr[r])
    rates, peek = np.empty(width + 1), np.empty(4)
    scaled = scale.shape[0] > 0  # an empty scale: raw features (no d-wide array of ones per call)
    for j in range(order.shape[0]):
        ahead(indptr, indices, data, ws, order, j)
        r = order[j]
        hr = h[r]
        if hr <= 0:  # not learned from; scored when asked (a held-out example of a stream)
            if preds.shape[0]:
                preds[j] = _peek_csr(indptr, indices, data, scale, ws, scalars, r, rule, lr, power_t, beta, l1, l2,
                                     intercept, end, span, peek)
            continue
        t, base = _tick(scalars, hr, rule, power_t)
        lr_t = lr if rule == 3 else lr * _anneal(end, span, t)
        lo, hi = indptr[r], indptr[r + 1]
        p = ws[d, W] if intercept else 0.0
        norm = 1.0 if intercept else 0.0
        for k in range(lo, hi):
            i = indices[k]
            x = data[k] * scale[i] if scaled else data[k]
            norm += _touch(rule, ws[i], x, lr, power_t, beta, base, t, l1, l2, end, span)
            p += ws[i, W] * x
        if preds.shape[0]:
            preds[j] = p
        g, base = _row_gradient(scalars, hr, norm, loss, p, y[r], out, rule, lr_t, power_t, t)
        if g == 0:
            continue
        if rule == 2:
            ppu = 0.0
            for k in range(lo, hi):
                i = indices[k]
                ppu += _rate_normalized(ws[i], data[k] * scale[i] if scaled else data[k], hr, g / hr, base, rates,
                                        k - lo)
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
            _step(rule, ws[i], g * (data[k] * scale[i] if scaled else data[k]), lr_t, power_t, beta, base, t, l1,
                  l2)
        if intercept:
            _step_intercept(rule, ws[d], g, lr_t, power_t, beta, base, t)


@njit(cache=True, inline="always")
def _give_back(c, moved, rule, lr, beta):
    """The intercept's row ``c`` takes back ``moved`` (shift . the weights' change: centred
    coordinates, ``_rows_dense``); FTRL keeps an unpenalised weight as ``z``, which follows."""
    c[W] -= moved
    if rule == 3:
        c[S] = -c[W] * (beta + math.sqrt(c[G])) / lr


@njit(cache=True, nogil=True)  # a stream parses its next block in another thread meanwhile
def _rows_dense(X, y, h, order, scale, shift, held, ws, scalars, out, loss, rule, lr, power_t, beta, l1, l2, intercept,
                end, span, preds):
    d = ws.shape[0] - 1
    rates, peek = np.empty(d + 1), np.empty(4)
    scaled = scale.shape[0] > 0
    # centred coordinates (``sgd.run``'s ``shift``): the steps see x - shift, the intercept takes
    # back shift . (every weight's change), so the score, the state and the optimum are the original's;
    # ``held``: the intercept stays centred (b + shift . w), nothing taken back (``sgd.run``)
    centred = intercept and shift.shape[0] > 0
    back = centred and not held
    held = centred and held
    line = max(64 // X.itemsize, 1)  # values a cache line holds
    for j in range(order.shape[0]):
        if j + AHEAD_ROWS < order.shape[0]:  # the row 8 ahead, a line at a time (in a C-ordered X)
            for q in range(0, d, line):
                prefetch2(X, order[j + AHEAD_ROWS], q)
        r = order[j]
        hr = h[r]
        if hr <= 0:
            if preds.shape[0]:
                preds[j] = _peek_dense(X, scale, shift, held, ws, scalars, r, rule, lr, power_t, beta, l1, l2,
                                       intercept, end, span, peek)
            continue
        t, base = _tick(scalars, hr, rule, power_t)
        lr_t = lr if rule == 3 else lr * _anneal(end, span, t)
        p = ws[d, W] if intercept else 0.0
        norm = 1.0 if intercept else 0.0
        moved = 0.0  # shift . the weights' change (taken back only)
        for i in range(d):
            x = X[r, i] * scale[i] if scaled else X[r, i]
            if held:
                x -= shift[i]
            if back:
                w0 = ws[i, W]
                norm += _touch(rule, ws[i], x - shift[i], lr, power_t, beta, base, t, l1, l2, end, span)
                moved += shift[i] * (ws[i, W] - w0)
            else:
                norm += _touch(rule, ws[i], x, lr, power_t, beta, base, t, l1, l2, end, span)
            p += ws[i, W] * x
        if back:
            _give_back(ws[d], moved, rule, lr, beta)
            p -= moved
        if preds.shape[0]:
            preds[j] = p
        g, base = _row_gradient(scalars, hr, norm, loss, p, y[r], out, rule, lr_t, power_t, t)
        if g == 0:
            continue
        moved = 0.0
        if rule == 2:
            ppu = 0.0
            for i in range(d):
                x = X[r, i] * scale[i] if scaled else X[r, i]
                if centred:
                    x -= shift[i]
                rates[i] = 0.0
                if x != 0:
                    ppu += _rate_normalized(ws[i], x, hr, g / hr, base, rates, i)
            if intercept:
                ws[d, S] = 1.0
                ppu += _rate_normalized(ws[d], 1.0, hr, g / hr, base, rates, d)
            u = invariant_scale(loss, p, y[r], hr, ppu)
            for i in range(d):
                ws[i, W] -= rates[i] * u
                if back:
                    moved += shift[i] * rates[i]
            if intercept:
                ws[d, W] -= (rates[d] - moved) * u
            continue
        for i in range(d):
            x = X[r, i] * scale[i] if scaled else X[r, i]
            if centred:
                x -= shift[i]
            if x != 0:
                w0 = ws[i, W]
                _step(rule, ws[i], g * x, lr_t, power_t, beta, base, t, l1, l2)
                if back:
                    moved += shift[i] * (ws[i, W] - w0)
        if intercept:
            _step_intercept(rule, ws[d], g, lr_t, power_t, beta, base, t)
        if back:
            _give_back(ws[d], moved, rule, lr, beta)


@njit(cache=True)
def _finalize(rule, ws, scalars, lr, power_t, beta, l1, l2, end, span, free, out):
    """Every coordinate brought up to date with the penalty: in ``ws`` itself when ``out`` is
    empty, else only into ``out`` (the weights), ``ws`` left as it is (its clocks unchanged)."""
    t, nsum = scalars[0], scalars[1]
    base = _base(rule, 1.0, power_t, t, nsum)
    skip = np.zeros(ws.shape[0], dtype=np.bool_)
    skip[free] = True
    apart = out.shape[0] > 0
    buf = ws[:1].copy().ravel()  # a row of the state's own dtype (a shard may keep float32)
    for i in range(ws.shape[0]):
        c = ws[i]
        if apart:
            buf[:] = c
            c = buf
        if skip[i]:
            pass
        elif rule == 3:
            c[W] = _ftrl_weight(c[S], c[G], lr, beta, l1 * t, l2 * t)
        else:
            _catch_up(rule, c, lr, power_t, base, t, l1, l2, end, span)
        if apart:
            out[i] = c[W]


@njit(cache=True, inline="always")
def _peek_csr(indptr, indices, data, scale, ws, scalars, r, rule, lr, power_t, beta, l1, l2, intercept, end, span, c):
    """Row ``r``'s score as the next row learned would see it: rescale and penalty catch-up
    applied to a copy ``c`` of each coordinate's state row, so predicting changes nothing.
    ``scale`` empty: raw features."""
    d = ws.shape[0] - 1
    t = scalars[0]
    base = _base(rule, 1.0, power_t, t, scalars[1])
    p = ws[d, W] if intercept else 0.0
    for k in range(indptr[r], indptr[r + 1]):
        i = indices[k]
        x = data[k] * scale[i] if scale.shape[0] else data[k]
        c[:] = ws[i]
        _touch(rule, c, x, lr, power_t, beta, base, t, l1, l2, end, span)
        p += c[W] * x
    return p


@njit(cache=True, inline="always")
def _peek_dense(X, scale, shift, held, ws, scalars, r, rule, lr, power_t, beta, l1, l2, intercept, end, span, c):
    """``_peek_csr`` of a dense row (``held``: in the centred coordinates of a held state)."""
    d = ws.shape[0] - 1
    t = scalars[0]
    base = _base(rule, 1.0, power_t, t, scalars[1])
    p = ws[d, W] if intercept else 0.0
    for i in range(d):
        x = X[r, i] * scale[i] if scale.shape[0] else X[r, i]
        if held:
            x -= shift[i]
        if x != 0:
            c[:] = ws[i]
            _touch(rule, c, x, lr, power_t, beta, base, t, l1, l2, end, span)
            p += c[W] * x
    return p


@njit(cache=True)
def _scores_csr(indptr, indices, data, ws, scalars, out, rule, lr, power_t, beta, l1, l2, intercept, end, span):
    """Each row's score, read-only (``_peek_csr``)."""
    c, raw, m = np.empty(4), np.empty(0), indptr.shape[0] - 1
    for r in range(m):
        if r + AHEAD_STATE < m:
            state_of(indptr, indices, ws, r + AHEAD_STATE)
        out[r] = _peek_csr(indptr, indices, data, raw, ws, scalars, r, rule, lr, power_t, beta, l1, l2, intercept, end,
                           span, c)


@njit(cache=True, inline="always")
def _softmax_row(ws, scalars, out, cols, xr, xc, sh, nnz, yr, hr, rule, lr, power_t, beta, l1, l2, intercept, end,
                 span, centred, scratch, rates):
    """One row of a K-class softmax (``_softmax_dense``, ``_softmax_csr``): its ``nnz`` columns
    ``cols`` with values ``xr`` (the score's) and ``xc`` (the steps': centred, ``sh`` their shift);
    coordinate ``(i, k)`` is state row ``i K + k``, the K intercepts the last K rows. Each class's
    weights take the rule's step on ``dloss/dp_k = softmax_k - [k = y]``; under the normalized
    rule each class's multiplier is the importance-invariant one of its score against the
    others' (the softmax loss in ``p_k`` alone is the logistic loss of ``p_k - log sum_{j != k}
    e^p_j``), which tends to ``h (softmax_k - [k = y])`` as the step shrinks. ``scratch``: 5 x K
    (scores, gradients, logits then multipliers, prediction changes, intercept give-backs)."""
    p, g, z, ppu, moved = scratch[0], scratch[1], scratch[2], scratch[3], scratch[4]
    K = p.shape[0]
    b0 = ws.shape[0] - K
    t, base1 = _tick(scalars, hr, rule, power_t)
    lr_t = lr if rule == 3 else lr * _anneal(end, span, t)
    norm = 1.0 if intercept else 0.0
    for k in range(K):
        p[k] = ws[b0 + k, W] if intercept else 0.0
        moved[k] = 0.0
    for j in range(nnz):
        row = cols[j] * K
        for k in range(K):
            c = ws[row + k]
            w0 = c[W]
            nk = _touch(rule, c, xc[j], lr, power_t, beta, base1, t, l1, l2, end, span)
            if k == 0:  # a feature's term of the normalizer counts once, not once per class
                norm += nk
            if centred:
                moved[k] += sh[j] * (c[W] - w0)
            p[k] += c[W] * xr[j]
    if centred:
        for k in range(K):
            _give_back(ws[b0 + k], moved[k], rule, lr, beta)
            p[k] -= moved[k]
    top = p.max()
    s = 0.0
    for k in range(K):
        g[k] = math.exp(p[k] - top)
        s += g[k]
    out[0] += hr * (top + math.log(s) - p[yr])
    out[1] += hr
    nsum = scalars[1] + hr * norm
    scalars[1] = nsum
    base = _base(rule, lr_t, power_t, t, nsum)
    for k in range(K):
        rest = s - g[k]
        if g[k] > 0.5 * s:  # the leading class: the others summed apart (s - e_k would cancel)
            rest = 0.0
            for q in range(K):
                rest += g[q] if q != k else 0.0
        z[k] = p[k] - top - math.log(rest) if rest > 0 else 700.0
    for k in range(K):
        g[k] = g[k] / s - (1.0 if k == yr else 0.0)
        moved[k] = 0.0
        ppu[k] = 0.0
    if rule == 2:
        for j in range(nnz):
            row = cols[j] * K
            for k in range(K):
                ppu[k] += _rate_normalized(ws[row + k], xc[j], hr, g[k], base, rates, j * K + k)
        for k in range(K):
            if intercept:
                ws[b0 + k, S] = 1.0
                ppu[k] += _rate_normalized(ws[b0 + k], 1.0, hr, g[k], base, rates, nnz * K + k)
            z[k] = invariant_scale(1, z[k], 1.0 if k == yr else 0.0, hr, ppu[k])  # the class's multiplier
        for j in range(nnz):
            row = cols[j] * K
            for k in range(K):
                ws[row + k, W] -= rates[j * K + k] * z[k]
                if centred:
                    moved[k] += sh[j] * rates[j * K + k]
        if intercept:
            for k in range(K):
                ws[b0 + k, W] -= (rates[nnz * K + k] - moved[k]) * z[k]
        return
    for j in range(nnz):
        if xc[j] == 0:
            continue
        row = cols[j] * K
        for k in range(K):
            c = ws[row + k]
            w0 = c[W]
            _step(rule, c, hr * g[k] * xc[j], lr_t, power_t, beta, base, t, l1, l2)
            if centred:
                moved[k] += sh[j] * (c[W] - w0)
    if intercept:
        for k in range(K):
            _step_intercept(rule, ws[b0 + k], hr * g[k], lr_t, power_t, beta, base, t)
            if centred:
                _give_back(ws[b0 + k], moved[k], rule, lr, beta)


@njit(cache=True, nogil=True)
def _softmax_dense(X, y, h, order, scale, shift, held, ws, scalars, out, rule, lr, power_t, beta, l1, l2, intercept,
                   end, span, K):
    """``_rows_dense`` for a K-class softmax (``_softmax_row``; ``held``: scored centred too, nothing taken back)."""
    d = X.shape[1]
    scaled = scale.shape[0] > 0
    centred = intercept and shift.shape[0] > 0
    back = centred and not held
    cols, xr, xc, sh = np.empty(d, np.int64), np.empty(d), np.empty(d), np.zeros(d)
    scratch, rates = np.empty((5, K)), np.empty((d + 1) * K)
    for j in range(order.shape[0]):
        r = order[j]
        if h[r] <= 0:
            continue
        nnz = 0
        for i in range(d):  # a zero not shifted is skipped, as a CSR row's missing column (K coordinates each)
            x = X[r, i] * scale[i] if scaled else X[r, i]
            v = x - shift[i] if centred else x
            if v != 0 or x != 0:
                cols[nnz], xr[nnz], xc[nnz] = i, x if back else v, v
                if back:
                    sh[nnz] = shift[i]
                nnz += 1
        _softmax_row(ws, scalars, out, cols, xr, xc, sh, nnz, int(y[r]), h[r], rule, lr, power_t, beta, l1, l2,
                     intercept, end, span, back, scratch, rates)


@njit(cache=True, nogil=True)
def _softmax_csr(indptr, indices, data, y, h, order, scale, ws, scalars, out, rule, lr, power_t, beta, l1, l2,
                 intercept, end, span, K):
    """``_rows_csr`` for a K-class softmax (``_softmax_row``)."""
    width = 0
    for r in order:
        width = max(width, indptr[r + 1] - indptr[r])
    scaled = scale.shape[0] > 0
    cols, xr, sh = np.empty(width, np.int64), np.empty(width), np.zeros(width)
    scratch, rates = np.empty((5, K)), np.empty((width + 1) * K)
    for j in range(order.shape[0]):
        r = order[j]
        if h[r] <= 0:
            continue
        nnz = 0
        for q in range(indptr[r], indptr[r + 1]):
            i = indices[q]
            cols[nnz], xr[nnz] = i, data[q] * scale[i] if scaled else data[q]
            nnz += 1
        _softmax_row(ws, scalars, out, cols, xr, xr, sh, nnz, int(y[r]), h[r], rule, lr, power_t, beta, l1, l2,
                     intercept, end, span, False, scratch, rates)
