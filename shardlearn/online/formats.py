"""A block of a stream's lines parsed into hashed examples, per input format:

- ``vw``: Vowpal Wabbit's text (``data/vwtext.py``, compiled);
- ``libsvm``: ``label index:value ...``, parsed by scikit-learn's C parser (a block it
  rejects is re-read line by line to name the bad line); index ``j`` is the feature named
  ``j`` (as in a dict ``{"j": value}``), hashed like any other;
- ``jsonl``: one JSON object a line, the label in field ``label``, every other field a
  feature as in a feature dict (numbers, strings as categories, nested objects as
  namespaces, null missing), read as columns by pyarrow (``data/jsonlines.py``; a block
  it cannot read so, such as a field both number and string, is read line by line).

``positive`` (a label value, as text) makes the label a class: that value positive, any
other negative; without it a label must be a number (or a boolean).

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
from shardlearn.data import jsonlines, libsvm, vwtext
from shardlearn.online import features

FORMATS = ("vw", "libsvm", "jsonl")
NEEDS_LABEL = ("jsonl",)  # formats whose label is a named field


class Block(NamedTuple):
    X: sp.csr_matrix  # hashed rows, 2**bits columns
    y: np.ndarray  # labels as written
    h: np.ndarray  # importance weights
    skipped: dict  # reason -> lines dropped (on_bad_row="skip")


def parse_block(fmt: str, buf: bytes, *, where, bits: int, on_bad_row: str, label: str | None = None,
                positive: str | None = None) -> Block:
    """The examples of ``buf`` (whole lines); ``where(i)`` names the block's line ``i`` in errors."""
    if fmt == "vw":
        return _vw(buf, where, bits, on_bad_row)
    if fmt == "libsvm":
        return _libsvm(buf, where, bits, on_bad_row)
    if fmt == "jsonl":
        return _jsonl(buf, where, bits, on_bad_row, label, positive)
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


def _positive_number(positive: str):
    low = positive.lower()
    if low in ("true", "false"):
        return 1.0 if low == "true" else 0.0
    try:
        return float(positive)
    except ValueError:
        return None


def _label_value(v, positive):
    """One JSON label as a float, or why it is not one."""
    if v is None:
        return "no label"
    if positive is not None:
        if isinstance(v, str):
            return float(v == positive)
        return float(float(v) == _positive_number(positive)) if isinstance(v, (int, float)) else \
            f"label {v!r} is not a number or a string"
    if isinstance(v, (int, float)) and np.isfinite(float(v)):
        return float(v)
    return f"label {v!r} is not a number (name the positive class with --positive-label)"


def _jsonl(buf, where, bits, on_bad_row, label, positive) -> Block:
    if label is None:
        raise DataError("--format jsonl needs --label FIELD: the field holding each example's label")
    cols = jsonlines.columns(buf)
    raw = cols.get(label) if cols is not None else None
    if raw is None or isinstance(raw, dict):  # not a column: the line-by-line reader names what is wrong
        return _jsonl_lines(buf, where, bits, on_bad_row, label, positive)
    if raw.dtype.kind == "f":
        if not np.isfinite(raw).all():
            return _jsonl_lines(buf, where, bits, on_bad_row, label, positive)
        y = raw if positive is None else (raw == _positive_number(positive)).astype(np.float64)
    elif positive is not None and all(v is not None for v in raw):
        y = (raw == positive).astype(np.float64)
    else:
        return _jsonl_lines(buf, where, bits, on_bad_row, label, positive)
    del cols[label]
    X = features.rows(cols, bits) if cols else sp.csr_matrix((y.size, 1 << bits))
    return Block(X, y, np.ones(y.size), {})


def _jsonl_lines(buf, where, bits, on_bad_row, label, positive) -> Block:
    """Line by line: a bad line is named (``on_bad_row="error"``) or counted by reason."""
    rows, ys, skipped = [], [], Counter()
    for i, obj in jsonlines.lines(buf):
        why = obj if isinstance(obj, str) else None
        if why is None:
            y = _label_value(obj.pop(label, None), positive)
            why = y if isinstance(y, str) else None
        if why is None:
            try:
                rows.append(features.one(obj, bits))
                ys.append(y)
                continue
            except DataError as e:
                why = str(e)
        if on_bad_row != "skip":
            raise DataError(f"{where(i)}: {why}")
        skipped[_reason(why)] += 1
    indptr = np.cumsum([0] + [idx.size for idx, _ in rows])
    idx = np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, dtype=np.int32)
    val = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0)
    X = sp.csr_matrix((val, idx, indptr), shape=(len(rows), 1 << bits))
    return Block(X, np.array(ys, dtype=np.float64), np.ones(len(rows)), dict(skipped))


def _reason(why: str) -> str:
    """A message without its specifics, to count skipped lines by kind."""
    return libsvm._reason(why.split(" (")[0])
