"""Deterministic synthetic data of ``../shared/BENCHMARKS.md``.

D1 (dense): feature j is ``N(0,1) * s_j`` with ``s = logspace(-1, 1, d)``; true
weights ``N(0,1) * 3 / (s_j * 10)``, bias 0.5, ``y ~ Bernoulli(sigmoid(X w* + b))``.
Rows come in blocks with their own seeds, so a smaller row count gives exactly
the first rows of a larger set; the test split is a separate stream.

>>> X, y = make_d1(1000, seed=0)
>>> X2, y2 = make_d1(100, seed=0)
>>> bool((X[:100] == X2).all() and (y[:100] == y2).all()), X.dtype, X.shape
(True, dtype('float32'), (1000, 100))
"""
from __future__ import annotations

import numpy as np

BLOCK = 50_000


def d1_true_weights(n_features: int = 100, seed: int = 0):
    s = np.logspace(-1, 1, n_features)
    w = np.random.default_rng([seed, 7, 0]).normal(size=n_features) * 3.0 / (s * 10.0)
    return w, 0.5, s


def make_d1(n_rows: int, n_features: int = 100, seed: int = 0, split: str = "train"):
    """``(X float32 (n, d), y int64 in {0, 1})``; ``split`` "train" or "test"."""
    stream = {"train": 1, "test": 2}[split]
    w, b, s = d1_true_weights(n_features, seed)
    X = np.empty((n_rows, n_features), dtype=np.float32)
    y = np.empty(n_rows, dtype=np.int64)
    for k, lo in enumerate(range(0, n_rows, BLOCK)):
        hi = min(lo + BLOCK, n_rows)
        rng = np.random.default_rng([seed, stream, k])
        block = rng.standard_normal((BLOCK, n_features), dtype=np.float32)[: hi - lo] * s.astype(np.float32)
        u = rng.random(BLOCK)[: hi - lo]
        z = block.astype(np.float64) @ w + b
        X[lo:hi] = block
        y[lo:hi] = (u < 1.0 / (1.0 + np.exp(-z))).astype(np.int64)
    return X, y
