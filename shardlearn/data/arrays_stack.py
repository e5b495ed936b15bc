"""Concatenating ``(X, y)`` blocks.

>>> import numpy as np
>>> X, y = stack([(np.ones((1, 2)), np.array([1])), (np.zeros((2, 2)), np.array([0, 0]))], 2)
>>> X.shape, y.tolist()
((3, 2), [1, 0, 0])
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def stack(blocks, n_features, has_label=True):
    """Concatenate ``(X, y)`` blocks (dense or CSR) into one pair."""
    if not blocks:
        return np.zeros((0, n_features)), (np.zeros(0) if has_label else None)
    Xs = [b[0] for b in blocks]
    X = sp.vstack(Xs, format="csr") if any(sp.issparse(x) for x in Xs) else np.concatenate(Xs)
    y = np.concatenate([b[1] for b in blocks]) if has_label else None
    return X, y
