"""The importance-invariant step of the normalized rule (Karampatziakis & Langford 2011,
"Online importance weight aware updates"; Vowpal Wabbit's default): a row of importance
weight ``h`` moves the prediction as ``h`` rows of weight 1 taken in infinitely small
steps would, i.e. along the gradient flow ``dp/dtau = -dloss/dp`` for time ``h * ppu``
(``ppu``: how much the prediction moves per unit of the row's multiplier), in closed
form per loss. No step jumps past the label, however large the weight or the rate.

>>> p = _flow(0, 0.0, 1.0, 50.0)   # squared loss from 0 toward label 1: lands on it, never beyond
>>> round(p, 12)
1.0
>>> round(invariant_scale(1, 0.0, 1.0, 1.0, 1e-9) / (0.5 - 1.0), 6)   # a tiny step: h * dloss/dp
1.0
"""
from __future__ import annotations

import math

from numba import njit


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
