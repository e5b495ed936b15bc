"""Label columns: text labels become numbers when every value is numeric, and
integral numbers become int64 class codes, so ``-1.0``/``1`` and ``"1"`` agree.

>>> numeric_labels(["1", "-1"]).tolist(), numeric_labels([0.0, 1.0]).dtype.name, numeric_labels(["a"]).tolist()
([1, -1], 'int64', ['a'])
"""
from __future__ import annotations

import numpy as np


def numeric_labels(y):
    y = np.asarray(y)
    if y.dtype.kind in "OUS":
        try:
            f = y.astype(np.float64)
        except ValueError:
            return y.astype(str)
        y = f
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        return y.astype(np.int64)
    return y
