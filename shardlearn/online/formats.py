"""A block of a stream's lines parsed into hashed examples, per input format:

- ``vw``: Vowpal Wabbit's text (``data/vwtext.py``, compiled);
- ``libsvm``: ``label index:value ...``, parsed by scikit-learn's C parser (a block it
  rejects is re-read line by line to name the bad line); index ``j`` is the feature named
  ``j`` (as in a dict ``{"j": value}``), hashed like any other.

Labels stay as the file writes them (float); a bad line stops the run naming where it is
(``where(i)`` of the block's line ``i``: a file's line, a stream's entry; ``on_bad_row="error"``)
or is skipped and counted by reason (``"skip"``).

>>> b = parse_block("vw", b"1 |a x:2\\nno |a x\\n-1 |a y\\n", where=lambda i: f"s.vw: line {i + 1}", bits=10,
...                 on_bad_row="skip")
>>> b.X.shape, b.y.tolist(), b.skipped
((2, 1024), [1.0, -1.0], {'label is not a number': 1})
"""
from __future__ import annotations

from collections import Counter
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from shardlearn.core.errors import DataError
from shardlearn.data import libsvm, vwtext
from shardlearn.online import features

FORMATS = ("vw", "libsvm")


class Block(NamedTuple):
    X: sp.csr_matrix  # hashed rows, 2**bits columns
    y: np.ndarray  # labels as written
    h: np.ndarray  # importance weights
    skipped: dict  # reason -> lines dropped (on_bad_row="skip")


def parse_block(fmt: str, buf: bytes, *, where, bits: int, on_bad_row: str) -> Block:
    """The examples of ``buf`` (whole lines); ``where(i)`` names the block's line ``i`` in errors."""
    if fmt == "vw":
        return _vw(buf, where, bits, on_bad_row)
    if fmt == "libsvm":
        return _libsvm(buf, where, bits, on_bad_row)
    raise DataError(f"format {fmt!r} is not known; expected one of {', '.join(FORMATS)}")


def _vw(buf, where, bits, on_bad_row) -> Block:
    parsed = vwtext.parse(buf, bits)
    status = parsed.status.copy()
    status[(status == vwtext.OK) & np.isnan(parsed.labels)] = vwtext.NO_LABEL  # learning needs a label
    bad = np.flatnonzero(status != vwtext.OK)
    skipped = Counter()
    if bad.size:
        r = int(bad[0])
        if on_bad_row != "skip":
            why = "no label before the '|'" if status[r] == vwtext.NO_LABEL else vwtext.bad_line(parsed, r, buf)
            raise DataError(f"{where(int(parsed.lines[r]))}: {why}")
        skipped.update(vwtext.REASONS[int(s)] for s in status[bad])
        parsed = parsed._replace(status=status)
    X, labels, weights, _ = vwtext.examples(parsed, bits)
    return Block(X, labels, weights, dict(skipped))


def _libsvm(buf, where, bits, on_bad_row) -> Block:
    if not buf.strip():
        return Block(sp.csr_matrix((0, 1 << bits)), np.zeros(0), np.zeros(0), {})
    try:
        X, y = libsvm._fast(buf, True, None)
        skipped = {}
    except (ValueError, OverflowError):
        X, y, skipped = libsvm._slow(buf, None, 0, True, None, on_bad_row, where=where)
    X = X.tocsr()
    names = np.unique(X.indices)  # each index as written is a feature name: hash each distinct one once
    cols = np.array([features.column(int(j), "", bits) for j in names], dtype=np.int32)
    H = sp.csr_matrix((X.data, cols[np.searchsorted(names, X.indices)], X.indptr), shape=(X.shape[0], 1 << bits))
    return Block(H, np.asarray(y, dtype=np.float64), np.ones(X.shape[0]), skipped)
