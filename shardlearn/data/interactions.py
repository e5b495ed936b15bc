"""Quadratic feature interactions between namespaces (Vowpal Wabbit's ``-q ab``): each row
gains, for every pair ``(a, b)`` asked for, one feature per pair of its features whose
namespaces start with ``a`` and ``b``, valued the product of their values, in column
``((i_a * 16777619) ^ i_b) mod 2**bits`` (FNV's prime, as VW combines hashes). A pair of
the same letter (``-q aa``) takes each unordered pair of distinct features once. Rows keep
their own features first, then the interactions, pair by pair. Compiled: no Python per row.

A row's features carry the first letter of their namespace (``letters``, one byte each;
the default namespace is a space, as in VW), which every input path provides: VW text,
feature dicts and tables (``online/features.py``).

>>> import numpy as np
>>> indptr, idx, val, let = np.array([0, 3]), np.array([5, 9, 2]), np.array([2.0, 3.0, 4.0]), np.frombuffer(b"uua", np.uint8)
>>> p, i, v = expand(indptr, idx, val, let, ["ua"], bits=10)
>>> p.tolist(), v.tolist()
([0, 5], [2.0, 3.0, 4.0, 8.0, 12.0])
"""
from __future__ import annotations

import numpy as np
from numba import njit

PRIME = 16777619


@njit(cache=True)
def _expand(indptr, indices, values, letters, pairs, mask, out_ptr, out_idx, out_val):
    n = indptr.shape[0] - 1
    pos = 0
    for r in range(n):
        lo, hi = indptr[r], indptr[r + 1]
        out_ptr[r] = pos
        for k in range(lo, hi):
            out_idx[pos] = indices[k]
            out_val[pos] = values[k]
            pos += 1
        for q in range(pairs.shape[0]):
            a, b = pairs[q, 0], pairs[q, 1]
            for i in range(lo, hi):
                if letters[i] != a:
                    continue
                for j in range(i + 1 if a == b else lo, hi):
                    if letters[j] != b:
                        continue
                    out_idx[pos] = ((indices[i] * PRIME) ^ indices[j]) & mask
                    out_val[pos] = values[i] * values[j]
                    pos += 1
    out_ptr[n] = pos
    return pos


@njit(cache=True)
def _count(indptr, letters, pairs):
    total = 0
    for r in range(indptr.shape[0] - 1):
        total += indptr[r + 1] - indptr[r]
        for q in range(pairs.shape[0]):
            na = nb = 0
            for k in range(indptr[r], indptr[r + 1]):
                na += letters[k] == pairs[q, 0]
                nb += letters[k] == pairs[q, 1]
            total += na * (na - 1) // 2 if pairs[q, 0] == pairs[q, 1] else na * nb
    return total


def pairs_array(pairs) -> np.ndarray:
    """``["ab", "cc"]`` as an (n, 2) byte array; each pair is two characters (namespace initials)."""
    for p in pairs:
        if len(p) != 2 or len(p.encode()) != 2:
            raise ValueError(f"an interaction is two namespace initials, like 'ab'; got {p!r}")
    return np.array([list(p.encode()) for p in pairs], dtype=np.uint8).reshape(-1, 2)


def expand(indptr, indices, values, letters, pairs, bits: int):
    """CSR arrays with the interactions ``pairs`` (namespace initials, ``["ab"]``) added per row."""
    pa = pairs_array(pairs)
    indptr = np.asarray(indptr, dtype=np.int64)
    letters = np.asarray(letters, dtype=np.uint8)
    size = _count(indptr, letters, pa)
    out_ptr, out_idx, out_val = np.empty(indptr.size, dtype=np.int64), np.empty(size, dtype=np.int64), np.empty(size)
    _expand(indptr, np.asarray(indices, dtype=np.int64), np.asarray(values, dtype=np.float64), letters, pa,
            (1 << bits) - 1, out_ptr, out_idx, out_val)
    return out_ptr, out_idx.astype(np.int32), out_val
