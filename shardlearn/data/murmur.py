"""MurmurHash3 (x86, 32-bit; Austin Appleby's public-domain algorithm) in compiled code,
over a byte range, for parsers that hash feature names without leaving compiled code.
It returns the same numbers as scikit-learn's ``murmurhash3_32(name, seed, positive=True)``
on the name's UTF-8 bytes (tested), so a feature hashed by a compiled parser and the same
feature in a Python dict land in the same column.

>>> import numpy as np
>>> from sklearn.utils import murmurhash3_32
>>> b = np.frombuffer("price".encode(), dtype=np.uint8)
>>> int(hash_bytes(b, 0, b.size, 7)) == murmurhash3_32("price", seed=7, positive=True)
True
"""
from __future__ import annotations

from numba import njit

_M = 0xFFFFFFFF


@njit(cache=True, inline="always")
def _rotl(x, r):
    return ((x << r) | (x >> (32 - r))) & _M


@njit(cache=True, inline="always")
def _mix(k):
    k = (k * 0xCC9E2D51) & _M
    k = _rotl(k, 15)
    return (k * 0x1B873593) & _M


@njit(cache=True)
def hash_bytes(buf, lo, hi, seed):
    """The hash of ``buf[lo:hi]`` (a uint8 array) with ``seed``, as an unsigned 32-bit value
    held in an int64."""
    h = seed & _M
    n = hi - lo
    end = lo + (n // 4) * 4
    for i in range(lo, end, 4):
        k = (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24)) & _M
        h ^= _mix(k)
        h = _rotl(h, 13)
        h = (h * 5 + 0xE6546B64) & _M
    rest = n & 3
    if rest:
        k = 0
        if rest == 3:
            k ^= buf[end + 2] << 16
        if rest >= 2:
            k ^= buf[end + 1] << 8
        k ^= buf[end]
        h ^= _mix(k & _M)
    h ^= n
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M
    h ^= h >> 16
    return h
