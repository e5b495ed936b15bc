"""Vowpal Wabbit's text format, parsed in compiled code into hashed CSR rows.

A line is ``[label] [importance] ['tag]|ns[:scale] name[:value] ... |ns2 ...``
(VW's input format): the label and an optional importance weight before the first
``|``; each ``|`` opens a namespace (``|`` then a space: the default one) whose
features hash with the namespace's seed into ``2**bits`` columns, the same columns a
feature dict ``{"ns": {"name": value}}`` gets (``online/features.py``; MurmurHash3 on
UTF-8 bytes, in compiled code here, equal to scikit-learn's ``murmurhash3_32``: tested; a name
of digits is its number plus the namespace's seed, as VW hashes it); a
value defaults to 1 and a namespace scale
multiplies its values. Blank lines are skipped. A line that does not parse gets a
reason code and the byte range of the culprit, never a silent zero: the caller skips
and counts it or stops with the file's line number (``bad_line``).

>>> import numpy as np
>>> text = b"1 2.0 'a|user id:3 |ad red\\n\\n-1 |user id:3.5e-1\\n1 |x q:zz\\n"
>>> r = parse(text, bits=18)
>>> r.labels.tolist(), r.weights.tolist(), r.indptr.tolist(), r.values.tolist()
([1.0, -1.0, 1.0], [2.0, 1.0, 1.0], [0, 2, 3, 3], [3.0, 1.0, 0.35])
>>> r.lines.tolist(), r.status.tolist(), bad_line(r, 2, text)
([0, 2, 3], [0, 0, 4], "feature value 'zz' is not a number")
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from numba import njit

from shardlearn.data.interactions import expand as interactions_expand


OK, NO_LABEL, BAD_LABEL, BAD_WEIGHT, BAD_VALUE, NOT_FINITE, NO_BAR, BAD_SCALE, BAD_HEADER = 0, 1, 2, 3, 4, 5, 6, 7, 8
REASONS = {NO_LABEL: "no label", BAD_LABEL: "label is not a number", BAD_WEIGHT: "importance weight is not a number",
           BAD_VALUE: "feature value is not a number", NOT_FINITE: "a number is not finite",
           NO_BAR: "no '|' opens the features", BAD_SCALE: "namespace scale is not a number",
           BAD_HEADER: "more than a label and an importance weight before the features (a base is not supported)"}
_POW10 = np.array([10.0 ** i for i in range(23)])


# MurmurHash3 (x86, 32-bit; Austin Appleby's public-domain algorithm) over a byte range. In this file,
# not its own: numba's cache keys a compiled function on its own file, so a callee in another file
# would stay stale in _parse's cache after a change (docs/gotchas.md).
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


class Parsed(NamedTuple):
    labels: np.ndarray  # float64, NaN where the line has no label
    weights: np.ndarray  # importance weights (1 when absent)
    indptr: np.ndarray
    indices: np.ndarray  # int32 columns in [0, 2**bits)
    values: np.ndarray
    lines: np.ndarray  # each example's line (0-based) in the buffer
    ends: np.ndarray  # the byte offset just past each example's line
    status: np.ndarray  # OK or a reason code
    culprit: np.ndarray  # (n, 2) byte range of what did not parse
    letters: np.ndarray  # each feature's namespace initial (a space: the default namespace), for -q


@njit(cache=True)
def _name_hash(buf, lo, hi, seed):
    """A feature name's hash: ASCII digits (1 to 18) are their number plus ``seed``, as Vowpal
    Wabbit hashes them (``online/features.column`` does the same); any other name MurmurHash3."""
    if hi - lo == 0 or hi - lo > 18:
        return hash_bytes(buf, lo, hi, seed)
    n = 0
    for k in range(lo, hi):
        if buf[k] < 48 or buf[k] > 57:
            return hash_bytes(buf, lo, hi, seed)
        n = n * 10 + (buf[k] - 48)
    return n + seed


@njit(cache=True)
def _number(buf, lo, hi, pow10):
    """``(value, code)``: 0 parsed exactly, 1 not a number, 2 not finite, 3 valid but beyond the
    exact fast path (the caller re-reads it)."""
    i, sign = lo, 1.0
    if i < hi and (buf[i] == 43 or buf[i] == 45):  # + -
        sign = -1.0 if buf[i] == 45 else 1.0
        i += 1
    if i < hi and ((buf[i] | 32) == 105 or (buf[i] | 32) == 110):  # i, n: inf, infinity, nan or a word
        return 0.0, 2 if _is_word(buf, i, hi, _INF) or _is_word(buf, i, hi, _INFINITY) or _is_word(
            buf, i, hi, _NAN) else 1
    mant, digits, exp, seen = 0, 0, 0, False
    while i < hi and 48 <= buf[i] <= 57:
        if digits < 18:
            mant = mant * 10 + (buf[i] - 48)
            digits += mant > 0
        else:
            exp += 1
        seen = True
        i += 1
    if i < hi and buf[i] == 46:  # .
        i += 1
        while i < hi and 48 <= buf[i] <= 57:
            if digits < 18:
                mant = mant * 10 + (buf[i] - 48)
                digits += mant > 0
                exp -= 1
            seen = True
            i += 1
    if not seen:
        return 0.0, 1
    if i < hi and (buf[i] | 32) == 101:  # e
        i += 1
        esign, e, eseen = 1, 0, False
        if i < hi and (buf[i] == 43 or buf[i] == 45):
            esign = -1 if buf[i] == 45 else 1
            i += 1
        while i < hi and 48 <= buf[i] <= 57:
            e = min(e * 10 + (buf[i] - 48), 100000)
            eseen = True
            i += 1
        if not eseen:
            return 0.0, 1
        exp += esign * e
    if i != hi:
        return 0.0, 1
    if mant == 0:
        return sign * 0.0, 0
    if mant < (1 << 53) and -22 <= exp <= 22:  # Clinger's fast path: one correctly rounded operation
        v = mant * pow10[exp] if exp >= 0 else mant / pow10[-exp]
        return sign * v, 0
    return 0.0, 3


_INF, _INFINITY, _NAN = (np.frombuffer(w, dtype=np.uint8) for w in (b"inf", b"infinity", b"nan"))


@njit(cache=True)
def _is_word(buf, lo, hi, word):
    if hi - lo != word.shape[0]:
        return False
    for j in range(word.shape[0]):
        if (buf[lo + j] | 32) != word[j]:
            return False
    return True


@njit(cache=True)
def _ws(c):
    return c == 32 or c == 9 or c == 13


@njit(cache=True, nogil=True)  # parsed while the kernel learns the previous block
def _parse(buf, bits, pow10, labels, weights, indptr, indices, values, lines, ends, status, culprit, slow, letters):
    mask = (1 << bits) - 1
    n, nnz, nslow, line, pos, size = 0, 0, 0, 0, 0, buf.shape[0]
    while pos < size:
        eol = pos
        while eol < size and buf[eol] != 10:
            eol += 1
        lo, hi = pos, eol
        pos, line = eol + 1, line + 1
        while lo < hi and _ws(buf[lo]):
            lo += 1
        if lo == hi:
            continue
        r = n
        n += 1
        lines[r], ends[r], status[r], labels[r], weights[r] = line - 1, min(eol + 1, size), OK, np.nan, 1.0
        indptr[r] = nnz
        bar = lo
        while bar < hi and buf[bar] != 124:
            bar += 1
        if bar == hi:
            status[r], culprit[r, 0], culprit[r, 1] = NO_BAR, lo, hi
            indptr[r + 1] = nnz
            continue
        k, i = 0, lo  # the header: label, importance; a token starting with ' (or touching the bar) is the tag
        while i < bar and status[r] == OK:
            while i < bar and _ws(buf[i]):
                i += 1
            if i == bar:
                break
            j = i
            while j < bar and not _ws(buf[j]):
                j += 1
            if buf[i] != 39 and not (j == bar and k >= 1):
                v, code = _number(buf, i, j, pow10)
                if code == 3:
                    slow[nslow, 0], slow[nslow, 1], slow[nslow, 2] = i, j, -(r + 1) if k == 0 else -(r + 1) - (1 << 40)
                    nslow += 1
                elif code != 0 or k > 1:
                    status[r] = BAD_HEADER if k > 1 else NOT_FINITE if code == 2 else BAD_LABEL if k == 0 \
                        else BAD_WEIGHT
                    culprit[r, 0], culprit[r, 1] = i, j
                elif k == 0:
                    labels[r] = v
                else:
                    weights[r] = v
                k += 1
            i = j
        i = bar
        while i < hi and status[r] == OK:  # namespaces
            i += 1  # past the bar
            seed, scale, initial = 0, 1.0, 32
            if i < hi and not _ws(buf[i]) and buf[i] != 124:
                initial = buf[i]
                j = i
                while j < hi and not _ws(buf[j]) and buf[j] != 58 and buf[j] != 124:
                    j += 1
                seed = hash_bytes(buf, i, j, 0)
                if j < hi and buf[j] == 58:
                    m = j + 1
                    while m < hi and not _ws(buf[m]) and buf[m] != 124:
                        m += 1
                    scale, code = _number(buf, j + 1, m, pow10)
                    if code != 0:
                        status[r], culprit[r, 0], culprit[r, 1] = BAD_SCALE, j + 1, m
                    j = m
                i = j
            while i < hi and buf[i] != 124 and status[r] == OK:
                while i < hi and _ws(buf[i]):
                    i += 1
                if i == hi or buf[i] == 124:
                    break
                j = i
                while j < hi and not _ws(buf[j]) and buf[j] != 124:
                    j += 1
                c = i
                while c < j and buf[c] != 58:
                    c += 1
                v, code = (1.0, 0) if c == j else _number(buf, c + 1, j, pow10)
                if code == 1 or code == 2:
                    status[r] = BAD_VALUE if code == 1 else NOT_FINITE
                    culprit[r, 0], culprit[r, 1] = c + 1, j
                elif code == 3 or v != 0.0:
                    indices[nnz] = _name_hash(buf, i, c, seed) & mask
                    letters[nnz] = initial
                    values[nnz] = (v if code == 0 else 1.0) * scale  # a slow number multiplies in later
                    if code == 3:
                        slow[nslow, 0], slow[nslow, 1], slow[nslow, 2] = c + 1, j, nnz
                        nslow += 1
                    nnz += 1
                i = j
        if status[r] != OK:
            nnz = indptr[r]
        indptr[r + 1] = nnz
    return n, nnz, nslow


def parse(buf: bytes, bits: int) -> Parsed:
    """Parse a buffer of whole lines (the last may lack its newline)."""
    b = np.frombuffer(buf, dtype=np.uint8)
    lines = int(np.count_nonzero(b == 10)) + 1
    tokens = int(np.count_nonzero((b == 32) | (b == 9) | (b == 124))) + lines
    out = [np.empty(lines), np.empty(lines), np.zeros(lines + 1, dtype=np.int64), np.empty(tokens, dtype=np.int32),
           np.empty(tokens), np.empty(lines, dtype=np.int64), np.empty(lines, dtype=np.int64),
           np.empty(lines, dtype=np.int8), np.zeros((lines, 2), dtype=np.int64)]
    slow = np.empty((tokens, 3), dtype=np.int64)
    letters = np.empty(tokens, dtype=np.uint8)
    n, nnz, nslow = _parse(b, int(bits), _POW10, *out, slow, letters)
    labels, weights, indptr, indices, values, line_of, ends, status, culprit = out
    for lo, hi, where in slow[:nslow]:  # numbers beyond the exact fast path: Python's float, correctly rounded
        v = float(buf[lo:hi])
        if not np.isfinite(v):  # 1e400
            r = int(np.searchsorted(indptr[1:n + 1], where, side="right")) if where >= 0 else \
                (-where - 1 if where > -(1 << 40) else -(where + (1 << 40)) - 1)
            status[r], culprit[r] = NOT_FINITE, (lo, hi)
        elif where >= 0:
            values[where] *= v
        elif where > -(1 << 40):
            labels[-where - 1] = v
        else:
            weights[-(where + (1 << 40)) - 1] = v
    return Parsed(labels[:n], weights[:n], indptr[:n + 1], indices[:nnz], values[:nnz], line_of[:n], ends[:n],
                  status[:n], culprit[:n], letters[:nnz])



def quick(buf: bytes, bits: int):
    """``(indptr, indices, values)`` of the lines in ``buf`` in one compiled call (counts,
    arrays and parse), for a served request's few rows where ``parse``'s own numpy calls
    would cost more than the parse; None when any line needs ``parse`` (it does not parse or
    is empty, or holds a number beyond the fast exact path): ``parse`` then says what is
    wrong, or reads the number exactly.

    >>> indptr, indices, values = quick(b"|a x:2 y\\n1 |b z:0.5\\n", 18)
    >>> indptr.tolist(), values.tolist()
    ([0, 2, 3], [2.0, 1.0, 0.5])
    >>> quick(b"|a x:one\\n", 18) is None
    True
    """
    indptr, indices, values, ok = _quick(np.frombuffer(buf, dtype=np.uint8), int(bits), _POW10)
    return (indptr, indices, values) if ok else None


@njit(cache=True, nogil=True)
def _quick(buf, bits, pow10):
    lines, tokens = 1, 1
    for c in buf:
        lines += c == 10
        tokens += c == 32 or c == 9 or c == 124
    tokens += lines
    labels, weights, indptr = np.empty(lines), np.empty(lines), np.zeros(lines + 1, dtype=np.int64)
    indices, values = np.empty(tokens, dtype=np.int32), np.empty(tokens)
    line_of, ends, status = np.empty(lines, dtype=np.int64), np.empty(lines, dtype=np.int64), np.empty(lines, np.int8)
    culprit, slow = np.zeros((lines, 2), dtype=np.int64), np.empty((tokens, 3), dtype=np.int64)
    letters = np.empty(tokens, dtype=np.uint8)
    n, nnz, nslow = _parse(buf, bits, pow10, labels, weights, indptr, indices, values, line_of, ends, status, culprit,
                           slow, letters)
    ok = nslow == 0
    for r in range(n):
        ok = ok and status[r] <= NO_LABEL
    return indptr[: n + 1], indices[:nnz], values[:nnz], ok

def examples(parsed: Parsed, bits: int, interactions=()):
    """The lines that parsed: ``(X, labels, weights, lines)``, X a CSR of ``2**bits`` columns, with
    the namespace ``interactions`` (VW's ``-q``: ``["ab"]``, ``data/interactions.py``) added."""
    arrays = (parsed.indptr, parsed.indices, parsed.values)
    if interactions:
        arrays = interactions_expand(parsed.indptr, parsed.indices, parsed.values, parsed.letters, interactions, bits)
    X = sp.csr_matrix((arrays[2], arrays[1], arrays[0]), shape=(parsed.labels.size, 1 << bits))
    ok = np.flatnonzero(parsed.status == OK)
    if ok.size == parsed.labels.size:
        return X, parsed.labels, parsed.weights, parsed.lines
    return X[ok], parsed.labels[ok], parsed.weights[ok], parsed.lines[ok]


def bad_line(parsed: Parsed, r: int, buf: bytes) -> str:
    """What is wrong with example ``r``, naming the text that did not parse."""
    lo, hi = parsed.culprit[r]
    text = bytes(buf[lo:hi]).decode("utf-8", "replace")
    reason = int(parsed.status[r])
    if reason == BAD_VALUE:
        return f"feature value {text!r} is not a number"
    if reason == NO_BAR:
        return "no '|' opens the features (VW text: [label] [importance] |namespace feature[:value] ...)"
    return f"{REASONS[reason]}: {text!r}"
