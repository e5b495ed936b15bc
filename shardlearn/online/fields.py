"""Examples from named fields (JSON lines, CSV): the label field taken out, every other
field a feature as in a feature dict (``online/features.py``). Columns when the reader
could read the block so (one hash per column or distinct category, no Python per cell),
else row by row, where a bad row is named (``on_bad_row="error"``) or counted by reason.

``positive`` (a label value, as text) makes the label a class: that value positive, any
other negative (``"yes"``, ``true``, ``1``); without it a label must be a number or a
boolean.

>>> import numpy as np
>>> X, y, h, skipped = from_columns({"y": np.array([1.0, 0.0]), "a": np.array([2.0, np.nan])}, where=str, bits=8,
...                                 on_bad_row="error", label="y", positive=None)
>>> X.nnz, y.tolist(), skipped
(1, [1.0, 0.0], {})
>>> from_rows([(0, {"y": "yes", "a": 1.0}), (1, {"a": 2.0})], where=lambda i: f"line {i + 1}", bits=8,
...           on_bad_row="skip", label="y", positive="yes")[1:]
(array([1.]), array([1.]), {'no label': 1})
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import scipy.sparse as sp

from shardlearn.core.errors import DataError
from shardlearn.data import libsvm
from shardlearn.online import features


def _positive_number(positive: str):
    low = positive.lower()
    if low in ("true", "false"):
        return 1.0 if low == "true" else 0.0
    try:
        return float(positive)
    except ValueError:
        return None


def label_value(v, positive):
    """One label as a float, or why it is not one."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "no label"
    if positive is not None:
        if isinstance(v, str):
            return float(v == positive)
        return float(float(v) == _positive_number(positive)) if isinstance(v, (int, float)) else \
            f"label {v!r} is not a number or a string"
    if isinstance(v, (int, float)) and np.isfinite(float(v)):
        return float(v)
    return f"label {v!r} is not a number (name the positive class with --positive-label)"


def from_columns(cols, *, where, bits, on_bad_row, label, positive, interactions=()):
    """``(X, y, h, skipped)`` from a block's columns, or None where the rows must be read one by
    one (no columns, or a label missing or not a number somewhere: those rows are named)."""
    raw = cols.get(label) if cols is not None else None
    if raw is None or isinstance(raw, dict):
        return None
    if raw.dtype.kind == "f":
        if not np.isfinite(raw).all():
            return None
        y = raw if positive is None else (raw == _positive_number(positive)).astype(np.float64)
    elif positive is not None and all(v is not None for v in raw):
        y = (raw == positive).astype(np.float64)
    else:
        return None
    rest = {k: v for k, v in cols.items() if k != label}
    X = features.rows(rest, bits, interactions) if rest else sp.csr_matrix((y.size, 1 << bits))
    return X, np.asarray(y, dtype=np.float64), np.ones(y.size), {}


def from_rows(items, *, where, bits, on_bad_row, label, positive, interactions=()):
    """``(X, y, h, skipped)`` from ``(line, dict or why not)`` pairs."""
    rows, ys, skipped = [], [], Counter()
    for i, obj in items:
        why = obj if isinstance(obj, str) else None
        if why is None:
            obj = dict(obj)
            y = label_value(obj.pop(label, None), positive)
            why = y if isinstance(y, str) else None
        if why is None:
            try:
                rows.append(features.one(obj, bits, interactions))
                ys.append(y)
                continue
            except DataError as e:
                why = str(e)
        if on_bad_row != "skip":
            raise DataError(f"{where(i)}: {why}")
        skipped[libsvm._reason(why.split(" (")[0])] += 1
    indptr = np.cumsum([0] + [idx.size for idx, _ in rows])
    idx = np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, dtype=np.int32)
    val = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0)
    X = sp.csr_matrix((val, idx, indptr), shape=(len(rows), 1 << bits))
    return X, np.array(ys, dtype=np.float64), np.ones(len(rows)), dict(skipped)
