"""The elastic-net penalty ``alpha * ((1 - l1_ratio)/2 * ||w||^2 + l1_ratio * ||w||_1)``.

The intercept ``b`` is never penalised (Zou & Hastie, 2005).

>>> import numpy as np
>>> p = {"w": np.array([1.0, -2.0]), "b": np.array(5.0)}
>>> value(p, alpha=0.1, l1_ratio=0.5)
0.275
"""
from __future__ import annotations

import numpy as np


def value(params, alpha: float, l1_ratio: float = 0.0) -> float:
    w = params["w"]
    l2 = 0.5 * float(np.vdot(w, w))
    l1 = float(np.abs(w).sum())
    return float(alpha * ((1.0 - l1_ratio) * l2 + l1_ratio * l1))


def l2_grad(params, alpha: float, l1_ratio: float = 0.0) -> dict:
    """Gradient of the smooth (L2) part only; the L1 part is left to proximal steps."""
    return {"w": alpha * (1.0 - l1_ratio) * params["w"], "b": np.zeros_like(params["b"])}


def objective(model, params, X, y, sample_weight=None, alpha=0.0, l1_ratio=0.0) -> float:
    """The full objective: weighted mean loss plus penalty."""
    return model.loss_and_grad(params, X, y, sample_weight)[0] + value(params, alpha, l1_ratio)
