"""Compiled column statistics of a CSR matrix, each in one read of its stored values: the
weighted sums of ``x`` and ``x^2`` that the preconditioner needs (``strategies.precond``),
and the renumbering of a sparse matrix onto its active columns (``runtime.loop``).

The rows are split into one contiguous block per numba thread (blocks of about equal stored
values); each block sums into a buffer of its own, added up at the end, so a result depends
on the number of threads, never on their scheduling (no atomics; the usual reduction of a
transposed product, Saad, *Iterative Methods for Sparse Linear Systems*, 2003, ch. 3). The
sums of ``x`` and ``x^2`` sit side by side in one ``(d, 2)`` buffer, so a stored value costs
one random access, not two. On D2's 2M rows (52M stored values) the statistics and the
compaction took 0.88 s and 0.58 s with scipy and numpy (two transposed products and a
squared copy of the data; a boolean scatter and a fancy-indexed gather); see
``benchmarks/results/fullbatch-pass``.

>>> import numpy as np, scipy.sparse as sp
>>> X = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]], dtype=np.float32))
>>> s1, s2 = column_sums(X, np.array([1.0, 2.0]))
>>> s1.tolist(), s2.tolist()
([1.0, 0.0, 8.0], [1.0, 0.0, 22.0])
>>> present(X.indices, 3).tolist()
[True, False, True]
>>> renumber(X.indices, np.array([0, 2]), 3).tolist()
[0, 1, 1]
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange


def blocks(indptr: np.ndarray, parts: int) -> np.ndarray:
    """Row boundaries of ``parts`` contiguous blocks holding about equal numbers of stored values.

    >>> blocks(np.array([0, 5, 6, 7, 10]), 2).tolist()
    [0, 1, 4]
    """
    targets = np.linspace(0, indptr[-1], parts + 1)
    cuts = np.searchsorted(indptr, targets, side="left").astype(np.int64)
    cuts[0], cuts[-1] = 0, indptr.size - 1
    return np.maximum.accumulate(cuts)


@njit(parallel=True, cache=True)
def _sums(indptr, indices, data, sw, cuts, bufs):
    for t in prange(cuts.size - 1):
        buf = bufs[t]
        for r in range(cuts[t], cuts[t + 1]):
            wr = sw[r]
            for k in range(indptr[r], indptr[r + 1]):
                x = np.float64(data[k])
                j = indices[k]
                buf[j, 0] += wr * x
                buf[j, 1] += wr * x * x


@njit(parallel=True, cache=True)
def _mark(indices, cuts, seen):
    for t in prange(cuts.size - 1):
        row = seen[t]
        for k in range(cuts[t], cuts[t + 1]):
            row[indices[k]] = True


@njit(parallel=True, cache=True)
def _gather(indices, pos, cuts, out):
    for t in prange(cuts.size - 1):
        for k in range(cuts[t], cuts[t + 1]):
            out[k] = pos[indices[k]]


def _parts(n: int) -> int:
    return max(1, min(numba.get_num_threads(), n))


def column_sums(X, sw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(X.T @ sw, (X * X).T @ sw)`` in float64 for a CSR ``X`` of any float dtype."""
    cuts = blocks(X.indptr, _parts(X.shape[0]))
    bufs = np.zeros((cuts.size - 1, X.shape[1], 2))
    _sums(X.indptr, X.indices, X.data, np.ascontiguousarray(sw, dtype=np.float64), cuts, bufs)
    total = bufs.sum(axis=0)
    return total[:, 0].copy(), total[:, 1].copy()


def _even(n: int) -> np.ndarray:
    return np.linspace(0, n, _parts(n) + 1).astype(np.int64)


def present(indices: np.ndarray, width: int) -> np.ndarray:
    """Which of ``width`` columns ``indices`` names (a boolean mask)."""
    seen = np.zeros((_parts(indices.size), width), dtype=np.bool_)
    _mark(indices, _even(indices.size), seen)
    return np.logical_or.reduce(seen, axis=0) if seen.shape[0] > 1 else seen[0]


def renumber(indices: np.ndarray, active: np.ndarray, width: int) -> np.ndarray:
    """``indices`` mapped to their positions in ``active`` (sorted columns that include all of
    them), int32 when ``active`` is shorter than 2^31."""
    pos = np.full(width, -1, dtype=np.int32 if active.size < 2**31 else np.int64)
    pos[active] = np.arange(active.size)
    out = np.empty(indices.size, dtype=pos.dtype)
    _gather(indices, pos, _even(indices.size), out)
    return out
