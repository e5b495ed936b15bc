"""Label columns: text labels become numbers when every value is numeric, and
integral numbers become int64 class codes, so ``-1.0``/``1`` and ``"1"`` agree.

>>> numeric_labels(["1", "-1"]).tolist(), numeric_labels([0.0, 1.0]).dtype.name, numeric_labels(["a"]).tolist()
([1, -1], 'int64', ['a'])
>>> map_positive([-1, 1, 1], "1").tolist(), map_positive(["normal.", "smurf."], "normal.", classes=["n", "y"]).tolist()
([0, 1, 1], ['y', 'n'])
"""
from __future__ import annotations

import numpy as np

from shardlearn.core.errors import DataError


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


def map_positive(y, positive, classes=None):
    """Binary labels from any labels: those equal to ``positive`` (compared as numbers when
    both are numeric, else as text) become 1 (or ``classes[1]``), the rest 0 (``classes[0]``)."""
    y = np.asarray(y)
    try:
        hit = y.astype(np.float64) == float(positive)
    except ValueError:
        hit = y.astype(str) == str(positive)
    if classes is None:
        return hit.astype(np.int64)
    return np.where(hit, classes[1], classes[0])


def check_classes(where: str, classes, model: str) -> None:
    """A classifier's labels, all workers' together: at least two classes, and two at most for
    the binary model ``logistic`` (a ``DataError`` naming ``where`` says what to do)."""
    if len(classes) < 2:
        only = classes[0] if len(classes) else None
        raise DataError(f"{where}: every label is {only!r}; a classifier needs at least 2 classes "
                        "(is --label the right column?)")
    if model == "logistic" and len(classes) > 2:
        raise DataError(f"{where}: {len(classes)} distinct labels for the binary model 'logistic'; "
                        "use --model softmax for more than two classes")
