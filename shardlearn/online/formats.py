"""A block of a stream's lines parsed into hashed examples, per input format:

- ``vw``: Vowpal Wabbit's text (``data/vwtext.py``, compiled);
- ``libsvm``: ``label index:value ...``, parsed by scikit-learn's C parser (a block it
  rejects is re-read line by line to name the bad line); index ``j`` is the feature named
  ``j`` (as in a dict ``{"j": value}``), hashed like any other;
- ``jsonl``: one JSON object a line, the label in field ``label``, every other field a
  feature as in a feature dict (numbers, strings as categories, nested objects as
  namespaces, null missing), read as columns by pyarrow (``data/jsonlines.py``; a block
  it cannot read so, such as a field both number and string, is read line by line);
- ``csv``: a header line, then rows; the label in column ``label``, every other column a
  feature (numbers, text as categories, empty missing), read as columns by pyarrow
  against the header (``data/csvlines.py``), each column's kind fixed by the first block.

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
from shardlearn.data import csvlines, jsonlines, libsvm, vwtext
from shardlearn.data.interactions import expand as interactions_expand
from shardlearn.online import FORMATS, NEEDS_LABEL, features, fields


class Block(NamedTuple):
    X: sp.csr_matrix  # hashed rows, 2**bits columns
    y: np.ndarray  # labels as written
    h: np.ndarray  # importance weights
    skipped: dict  # reason -> lines dropped (on_bad_row="skip")


class Parser:
    """A stream's parser: ``block(buf, where)`` for each block in order. CSV's header is the
    first line it is given, unless ``header`` (the file's first line, on resuming) says it."""

    def __init__(self, fmt: str, *, bits: int, on_bad_row: str = "error", label: str | None = None,
                 positive: str | None = None, header: bytes | None = None, delimiter: str = ",", interactions=()):
        if fmt not in FORMATS:
            raise DataError(f"format {fmt!r} is not known; expected one of {', '.join(FORMATS)}")
        if fmt in NEEDS_LABEL and label is None:
            raise DataError(f"--format {fmt} needs --label: the field holding each example's label")
        self.fmt, self.bits, self.on_bad_row, self.label, self.positive = fmt, bits, on_bad_row, label, positive
        self.delimiter, self.interactions = delimiter, list(interactions)
        self.csv = csvlines.CsvLines(header, delimiter) if fmt == "csv" and header is not None else None

    def block(self, buf: bytes, where) -> Block:
        """The examples of ``buf`` (whole lines); ``where(i)`` names the block's line ``i`` in errors."""
        if self.fmt == "vw":
            return _vw(buf, where, self.bits, self.on_bad_row, self.interactions)
        if self.fmt == "libsvm":
            return _libsvm(buf, where, self.bits, self.on_bad_row, self.interactions)
        if self.fmt == "csv" and self.csv is None:  # the stream's first line: the header
            cut = buf.find(b"\n") + 1 or len(buf)
            self.csv = csvlines.CsvLines(buf[:cut], self.delimiter)
            buf, shifted = buf[cut:], where
            where = (lambda i: shifted(i + 1))
        opts = dict(where=where, bits=self.bits, on_bad_row=self.on_bad_row, label=self.label,
                    positive=self.positive, interactions=self.interactions)
        if self.fmt == "jsonl":
            return Block(*(fields.from_columns(jsonlines.columns(buf), **opts) or
                           fields.from_rows(jsonlines.lines(buf), **opts)))
        reader = self.csv
        return Block(*(fields.from_columns(reader.columns(buf), **opts) or fields.from_rows(reader.lines(buf), **opts)))


def parse_block(fmt: str, buf: bytes, *, where, bits: int, on_bad_row: str, label: str | None = None,
                positive: str | None = None) -> Block:
    """One block of a stream that needs no state across blocks (not CSV after its header)."""
    return Parser(fmt, bits=bits, on_bad_row=on_bad_row, label=label, positive=positive).block(buf, where)


def _vw(buf, where, bits, on_bad_row, interactions=()) -> Block:
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
    X, labels, weights, _ = vwtext.examples(parsed, bits, interactions)
    return Block(X, labels, weights, dict(skipped))


def _libsvm(buf, where, bits, on_bad_row, interactions=()) -> Block:
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
    if interactions:  # LIBSVM has one namespace, the default one
        p, i, v = interactions_expand(H.indptr, H.indices, H.data, np.full(H.nnz, 32, np.uint8), interactions, bits)
        H = sp.csr_matrix((v, i, p), shape=H.shape)
    return Block(H, np.asarray(y, dtype=np.float64), np.ones(X.shape[0]), skipped)
