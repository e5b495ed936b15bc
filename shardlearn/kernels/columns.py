"""Compiled column statistics of a CSR matrix, each in one read of its stored values: the
weighted sums of ``x`` and ``x^2`` that the preconditioner needs (``strategies.precond``),
and the renumbering of a sparse matrix onto its active columns (``runtime.loop``).

The sums of ``x`` and ``x^2`` sit side by side in one ``(d, 2)`` buffer, so a stored value
costs one random access, not two (the layout Vowpal Wabbit gives a weight and its adaptive
sums). On D2's 2M rows (52M stored values) the statistics and the compaction took 0.88 s and
0.58 s with scipy and numpy (two transposed products and a float64 squared copy of the data;
a boolean scatter and a fancy-indexed gather), about 0.2 s and 0.35 s compiled
(``benchmarks/README.md``, "Distributed runtime"). They run on one thread: split over the
two cores of the machine they were measured on, with a buffer per thread, they were no
faster (the passes are bound by random accesses into the d-wide buffers), and a threaded
numba region is not safe in a process that forks afterwards (GNU OpenMP).

>>> import numpy as np, scipy.sparse as sp
>>> X = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]], dtype=np.float32))
>>> s1, s2 = column_sums(X, np.array([1.0, 2.0]))
>>> s1.tolist(), s2.tolist()
([1.0, 0.0, 8.0], [1.0, 0.0, 22.0])
>>> present(X.indices, 3).tolist()
[True, False, True]
>>> renumber(X.indices, np.array([0, 2]), 3).tolist()
[0, 1, 1]
>>> touched(X, np.array([1]), np.zeros(3, dtype=bool)).tolist()
[2]
>>> distinct(np.array([2, 0, 2, 1, 0]), np.zeros(3, dtype=bool)).tolist()
[2, 0, 1]
>>> keys, Xc = batch(X, np.array([1, 0]), np.full(3, -1, dtype=np.int32))   # rows 1 then 0
>>> keys.tolist(), Xc.toarray().tolist()
([0, 2], [[0.0, 3.0], [1.0, 2.0]])

``batch`` is a parameter-server step's bookkeeping (``strategies.ps_online``): the rows of
a batch gathered and their columns renumbered onto the sorted keys they touch, in one pass
(numpy's ``X[rows]``, ``np.unique`` and a new CSR matrix took a third of a one-worker
``asp`` step on D2); the keys are sorted by radix (LSD, 11 bits a pass; Knuth, TAOCP vol. 3,
5.2.5), which took a 2,048-row step of D2 from 0.99 to 0.69 us a row (by hand,
``benchmarks/README.md``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from shardlearn.kernels.prefetch import prefetch


@njit(cache=True)
def _sums(indptr, indices, data, sw, buf):
    for r in range(indptr.size - 1):
        wr = sw[r]
        for k in range(indptr[r], indptr[r + 1]):
            x = np.float64(data[k])
            j = indices[k]
            buf[j, 0] += wr * x
            buf[j, 1] += wr * x * x


@njit(cache=True)
def _mark(indices, seen):
    for k in range(indices.size):
        seen[indices[k]] = True


@njit(cache=True)
def _gather(indices, pos, out):
    for k in range(indices.size):
        out[k] = pos[indices[k]]


_DIGIT = 11  # bits a radix pass sorts: 2,048 buckets, which sit in L1 with their counts


@njit(cache=True, nogil=True)
def _radix_order(keys):
    """The permutation that sorts ``keys`` (distinct, non-negative int64): a stable LSD radix
    sort, ``_DIGIT`` bits a pass, as many passes as the largest key needs. For a step's ~12,000
    keys of a 4M-wide model: 2 passes of ~25,000 operations, against a comparison sort's
    ~170,000 compares (numba's argsort took 0.76 ms of a 2,048-row step's 2.6 ms, by hand)."""
    n = keys.size
    if n < 64:
        return np.argsort(keys)
    order = np.arange(n)
    top = 0
    for t in range(n):
        top = max(top, keys[t])
    buckets = 1 << _DIGIT
    count = np.empty(buckets + 1, dtype=np.int64)
    spare = np.empty(n, dtype=np.int64)
    shift = 0
    while (top >> shift) > 0:
        count[:] = 0
        for t in range(n):
            count[((keys[order[t]] >> shift) & (buckets - 1)) + 1] += 1
        for b in range(buckets):
            count[b + 1] += count[b]
        for t in range(n):
            d = (keys[order[t]] >> shift) & (buckets - 1)
            spare[count[d]] = order[t]
            count[d] += 1
        order, spare = spare, order
        shift += _DIGIT
    return order


@njit(cache=True, nogil=True)  # the shard's RPC threads run meanwhile (asp)
def _batch(indptr, indices, data, rows, pos, keys, sub_indptr, sub_indices, sub_data):
    n = 0
    out = 0
    for i in range(rows.size):
        if i + 8 < rows.size:  # rows in a shuffled order: their values and scratch slots asked for ahead
            q = indptr[rows[i + 8]]
            prefetch(indices, q)
            prefetch(data, q)
        if i + 2 < rows.size:
            for k in range(indptr[rows[i + 2]], indptr[rows[i + 2] + 1]):
                prefetch(pos, indices[k])
        r = rows[i]
        for k in range(indptr[r], indptr[r + 1]):
            j = indices[k]
            if pos[j] < 0:  # first seen: numbered in order of appearance for now
                pos[j] = n
                keys[n] = j
                n += 1
            sub_indices[out] = pos[j]
            sub_data[out] = data[k]
            out += 1
        sub_indptr[i + 1] = out
    order = _radix_order(keys[:n])
    rank = np.empty(n, dtype=np.int32)
    for t in range(n):
        rank[order[t]] = t
    for k in range(out):
        sub_indices[k] = rank[sub_indices[k]]
    first = keys[:n].copy()
    for t in range(n):
        keys[t] = first[order[t]]
        pos[keys[t]] = -1  # the scratch is left as it came: all -1
    return n


@njit(cache=True)
def _first_seen(values, lo, hi, seen, out, n):
    """``values[lo:hi]`` not yet ``seen`` appended to ``out`` from ``n`` on (and marked); the new ``n``."""
    for k in range(lo, hi):
        j = values[k]
        if not seen[j]:
            seen[j] = True
            out[n] = j
            n += 1
    return n


@njit(cache=True)
def _touched(indptr, indices, rows, seen, keys):
    n = 0
    for i in range(rows.size):
        n = _first_seen(indices, indptr[rows[i]], indptr[rows[i] + 1], seen, keys, n)
    for t in range(n):
        seen[keys[t]] = False  # the scratch is left as it came: all False
    return n


@njit(cache=True)
def _distinct(values, seen, out):
    n = _first_seen(values, 0, values.size, seen, out, 0)
    for t in range(n):
        seen[out[t]] = False
    return n


def distinct(values: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """``values`` (int64, each below ``seen.size``) without repeats, in order of first appearance
    (so every worker that sees the same list gets the same order, without a sort); ``seen`` as
    in ``touched``."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    out = np.empty(values.size, dtype=np.int64)
    return out[: _distinct(values, seen, out)]


def touched(X, rows: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """The sorted columns rows ``rows`` of CSR ``X`` touch (int64), at the cost of their stored
    values: ``seen``, a scratch of ``X.shape[1]`` booleans, all False, and left so."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    nnz = int(np.sum(X.indptr[rows + 1] - X.indptr[rows])) if rows.size else 0
    keys = np.empty(min(nnz, X.shape[1]), dtype=np.int64)
    n = _touched(X.indptr, X.indices, rows, seen, keys)
    return np.sort(keys[:n])


def batch(X, rows: np.ndarray, pos: np.ndarray):
    """``(keys, Xc)``: rows ``rows`` of CSR ``X`` (in that order) with their columns renumbered
    onto ``keys``, the sorted columns they touch (int64): ``Xc = X[rows][:, keys]``. ``pos``:
    a scratch of ``X.shape[1]`` int32, all -1, and left so (one per caller, reused)."""
    import scipy.sparse as sp

    rows = np.ascontiguousarray(rows, dtype=np.int64)
    nnz = int(np.sum(X.indptr[rows + 1] - X.indptr[rows])) if rows.size else 0
    keys = np.empty(nnz, dtype=np.int64)
    sub_indptr = np.zeros(rows.size + 1, dtype=np.int32 if nnz < 2**31 else np.int64)
    sub_indices = np.empty(nnz, dtype=np.int32)
    sub_data = np.empty(nnz, dtype=X.data.dtype)
    n = _batch(X.indptr, X.indices, X.data, rows, pos, keys, sub_indptr, sub_indices, sub_data)
    Xc = sp.csr_matrix((sub_data, sub_indices, sub_indptr), shape=(rows.size, n), copy=False)
    return keys[:n], Xc


def column_sums(X, sw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(X.T @ sw, (X * X).T @ sw)`` in float64 for a CSR ``X`` of any float dtype."""
    buf = np.zeros((X.shape[1], 2))
    _sums(X.indptr, X.indices, X.data, np.ascontiguousarray(sw, dtype=np.float64), buf)
    return buf[:, 0].copy(), buf[:, 1].copy()


def present(indices: np.ndarray, width: int) -> np.ndarray:
    """Which of ``width`` columns ``indices`` names (a boolean mask)."""
    seen = np.zeros(width, dtype=np.bool_)
    _mark(indices, seen)
    return seen


def renumber(indices: np.ndarray, active: np.ndarray, width: int, out: np.ndarray | None = None) -> np.ndarray:
    """``indices`` mapped to their positions in ``active`` (sorted columns that include all of
    them), int32 when ``active`` is shorter than 2^31; into ``out`` where given (``indices``
    itself: renumbered in place, no second array of its size)."""
    pos = np.full(width, -1, dtype=np.int32 if active.size < 2**31 else np.int64)
    pos[active] = np.arange(active.size)
    out = np.empty(indices.size, dtype=pos.dtype) if out is None else out
    _gather(indices, pos, out)
    return out
