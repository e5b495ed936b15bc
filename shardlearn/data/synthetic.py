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


D2_FIELDS = 26
D2_BITS = 22


def _d2_tables(seed: int):
    """Per field: the Zipf(1.2) CDF over its V_f values (V_f = round(10^(2 + 4f/25)))."""
    sizes = [int(round(10 ** (2 + 4 * f / 25))) for f in range(D2_FIELDS)]
    cdfs = []
    for v in sizes:
        p = 1.0 / np.arange(1, v + 1) ** 1.2
        cdfs.append(np.cumsum(p / p.sum()))
    return sizes, cdfs


def _d2_keys(field: int, values: np.ndarray) -> np.ndarray:
    return (np.int64(field) << 20 | values.astype(np.int64)).astype(np.int32)


def d2_weights(keys: np.ndarray, seed: int = 0) -> np.ndarray:
    """The true weight 0.5 * N(0,1) of each (field, value) key, from a stable hash."""
    from scipy.special import ndtri
    from sklearn.utils import murmurhash3_32

    u = (murmurhash3_32(keys, seed=1000 + seed, positive=True).astype(np.float64) + 0.5) / 2.0**32
    return 0.5 * ndtri(u)


def make_d2(n_rows: int, seed: int = 0, split: str = "train"):
    """D2 of ``BENCHMARKS.md``: ``(X CSR float32 (n, 2**22), y int64)``, 26 one-hot fields
    hashed into 2**22 columns (murmurhash3; duplicate indices in a row sum), Zipf(1.2)
    values, bias set so the positive rate is 0.2. A prefix of a larger set, as for D1.

    >>> X, y = make_d2(2000)
    >>> X.shape, int(X.sum(axis=1).max()), bool(0.1 < y.mean() < 0.3)
    ((2000, 4194304), 26, True)
    """
    from sklearn.utils import murmurhash3_32

    stream = {"train": 1, "test": 2}[split]
    sizes, cdfs = _d2_tables(seed)
    cols = np.empty((n_rows, D2_FIELDS), dtype=np.int64)
    z = np.zeros(n_rows)
    for k, lo in enumerate(range(0, n_rows, BLOCK)):
        hi = min(lo + BLOCK, n_rows)
        rng = np.random.default_rng([seed, 10 + stream, k])
        u = rng.random((BLOCK, D2_FIELDS))[: hi - lo]
        for f in range(D2_FIELDS):
            vals = np.minimum(np.searchsorted(cdfs[f], u[:, f]), sizes[f] - 1)
            keys = _d2_keys(f, vals)
            cols[lo:hi, f] = murmurhash3_32(keys, seed=seed, positive=True).astype(np.int64) % (1 << D2_BITS)
            z[lo:hi] += d2_weights(keys, seed)
    bias = _d2_bias(seed)
    y = np.empty(n_rows, dtype=np.int64)
    for k, lo in enumerate(range(0, n_rows, BLOCK)):
        hi = min(lo + BLOCK, n_rows)
        u = np.random.default_rng([seed, 20 + stream, k]).random(BLOCK)[: hi - lo]
        y[lo:hi] = u < 1.0 / (1.0 + np.exp(-(z[lo:hi] + bias)))
    import scipy.sparse as sp

    idx = np.int32 if n_rows * D2_FIELDS < 2**31 else np.int64
    indptr = np.arange(0, n_rows * D2_FIELDS + 1, D2_FIELDS, dtype=idx)
    X = sp.csr_matrix((np.ones(n_rows * D2_FIELDS, dtype=np.float32), cols.ravel().astype(idx), indptr),
                      shape=(n_rows, 1 << D2_BITS))
    X.sum_duplicates()
    return X, y


def _d2_bias(seed: int) -> float:
    """The bias giving a positive rate of 0.2, found by bisection on a fixed sample of scores."""
    sizes, cdfs = _d2_tables(seed)
    u = np.random.default_rng([seed, 99]).random((20000, D2_FIELDS))
    z = np.zeros(len(u))
    for f in range(D2_FIELDS):
        vals = np.minimum(np.searchsorted(cdfs[f], u[:, f]), sizes[f] - 1)
        z += d2_weights(_d2_keys(f, vals), seed)
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if np.mean(1.0 / (1.0 + np.exp(-(z + mid)))) > 0.2:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)
