"""LIBSVM / svmlight text read by byte range, so a worker reads only its lines.

A range ``[start, end)`` owns the lines whose first byte lies in it (the rule of
Hadoop's line splits): disjoint ranges covering the file give every line exactly
once. Parsing runs through scikit-learn's C parser; when it rejects a block, a
Python parser re-reads that block to name the file, line and problem (or, with
``on_bad_row="skip"``, to drop and count bad lines). ``qid:`` tokens and ``#``
comments are ignored; CRLF endings, blank lines and a missing final newline work.

>>> import os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "d.svm")
>>> _ = open(p, "wb").write(b"1 1:0.5 3:2\\r\\n# note\\n\\n-1 qid:4 2:1\\n0 3:1.5")
>>> X, y, bad = parse_range(p, 0, os.path.getsize(p), zero_based=False, n_features=3)
>>> X.toarray().tolist(), y.tolist(), bad
([[0.5, 0.0, 2.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.5]], [1.0, -1.0, 0.0], {})
>>> [parse_range(p, *r, zero_based=False, n_features=3)[1].tolist() for r in split(p, 2)]
[[1.0], [-1.0, 0.0]]
"""
from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import re
import shutil
import tempfile
import zlib
from collections import Counter

import numpy as np
import scipy.sparse as sp

from shardlearn.core.errors import DataError

CHUNK_BYTES = 32 << 20
MAX_INDEX = (1 << 31) - 2  # scikit-learn's parser holds indices as C ints; wider files need feature hashing


@contextlib.contextmanager
def plain(path: str):
    """``path`` itself, or for a gzip file a decompressed copy in the temporary folder (removed
    when the block ends): byte ranges need an uncompressed file."""
    if not str(path).lower().endswith(".gz"):
        yield path
        return
    fd, tmp = tempfile.mkstemp(prefix="shardlearn-", suffix=".libsvm")
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(path, "rb") as f:
            shutil.copyfileobj(f, out, 1 << 22)
        yield tmp
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: the file is truncated or corrupt ({e})") from None
    finally:
        os.unlink(tmp)


def align(f, pos: int) -> int:
    """First line start at or after ``pos`` (``f`` a binary file)."""
    if pos <= 0:
        return 0
    f.seek(pos - 1)
    f.readline()
    return f.tell()


def split(path: str, world: int) -> list[tuple[int, int]]:
    """``world`` line-aligned byte ranges covering the file."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        cuts = [align(f, size * r // world) for r in range(world)] + [size]
    return [(cuts[r], max(cuts[r], cuts[r + 1])) for r in range(world)]


def chunks(path: str, start: int, end: int, chunk_bytes: int = CHUNK_BYTES):
    """Line-aligned sub-ranges of ``[start, end)`` of about ``chunk_bytes`` each."""
    with open(path, "rb") as f:
        lo = align(f, start)
        stop = align(f, end) if end < os.path.getsize(path) else end
        while lo < stop:
            hi = min(stop, align(f, lo + chunk_bytes))
            yield lo, hi
            lo = hi


def line_number(path: str, pos: int) -> int:
    """1-based number of the line starting at byte ``pos``."""
    n, done = 1, 0
    with open(path, "rb") as f:
        while done < pos:
            block = f.read(min(1 << 22, pos - done))
            if not block:
                break
            n += block.count(b"\n")
            done += len(block)
    return n


def _fast(buf, zero_based, n_features):
    from sklearn.datasets import load_svmlight_file

    X, y = load_svmlight_file(io.BytesIO(buf), n_features=n_features, zero_based=zero_based, dtype=np.float64)
    if not (np.isfinite(X.data).all() and np.isfinite(y).all()):
        raise ValueError("non-finite value")
    return X.tocsr(), y


def _parse_line(tokens, zero_based, n_features):
    """One data line's (label, indices, values), or a message saying what is wrong."""
    try:
        label = float(tokens[0])
    except ValueError:
        return f"label {tokens[0].decode(errors='replace')!r} is not a number; expected a numeric label"
    if not math.isfinite(label):
        return f"label {tokens[0].decode()} is not finite"
    idx, val, seen = [], [], set()
    for tok in tokens[1:]:
        k, colon, v = tok.partition(b":")
        text = tok.decode(errors="replace")
        if not colon:
            return f"token {text!r} has no colon; expected index:value"
        if k == b"qid":
            continue
        try:
            i = int(k)
        except ValueError:
            return f"index {k.decode(errors='replace')!r} in {text!r} is not an integer"
        if i < 0:
            return f"negative index {i} in {text!r}"
        if i > MAX_INDEX:
            return f"index {i} in {text!r} is too large (at most {MAX_INDEX:,}); hash the features into fewer columns"
        if i == 0 and not zero_based:
            return f"index 0 in {text!r} in a 1-based file (indices start at 1; pass zero_based=True for 0-based files)"
        j = i if zero_based else i - 1
        if n_features is not None and j >= n_features:
            return f"feature index {i} in {text!r} is beyond the {n_features} features the model has"
        if j in seen:
            return f"index {i} appears twice in one row"
        try:
            x = float(v)
        except ValueError:
            return f"value {v.decode(errors='replace')!r} in {text!r} is not a number"
        if not math.isfinite(x):
            return f"value {v.decode()} in {text!r} is not finite (NaN and Inf are not accepted)"
        seen.add(j)
        idx.append(j)
        val.append(x)
    return label, idx, val


def _reason(message: str) -> str:
    """A message without its specifics, to count skipped lines by kind."""
    return re.sub(r"-?\d+(\.\d+)?", "N", re.sub(r"'[^']*'", "'...'", message))


def _slow(buf, path, first_line, zero_based, n_features, on_bad_row, where=None):
    """Line by line, naming a bad line ``path: line N`` (or ``where(i)`` for the block's line ``i``)."""
    labels, indptr, indices, values, bad = [], [0], [], [], Counter()
    for offset, raw in enumerate(buf.split(b"\n")):
        tokens = raw.split(b"#", 1)[0].split()
        if not tokens:
            continue
        parsed = _parse_line(tokens, zero_based, n_features)
        if isinstance(parsed, str):
            if on_bad_row != "skip":
                raise DataError(f"{where(offset) if where else f'{path}: line {first_line + offset}'}: {parsed}")
            bad[_reason(parsed)] += 1
            continue
        label, idx, val = parsed
        order = np.argsort(idx)
        labels.append(label)
        indices.extend(np.asarray(idx, dtype=np.int64)[order].tolist())
        values.extend(np.asarray(val)[order].tolist())
        indptr.append(len(indices))
    width = n_features if n_features is not None else (max(indices) + 1 if indices else 0)
    X = sp.csr_matrix((np.asarray(values, dtype=np.float64), np.asarray(indices, dtype=np.int64), indptr),
                      shape=(len(labels), width))
    return X, np.asarray(labels, dtype=np.float64), dict(bad)


def parse_range(path, start, end, *, zero_based, n_features, on_bad_row="error"):
    """Rows of the lines owned by ``[start, end)``: ``(X csr, y, skipped)``, where
    ``skipped`` counts dropped lines by reason (only with ``on_bad_row="skip"``)."""
    with open(path, "rb") as f:
        lo = align(f, start)
        hi = align(f, end) if end < os.path.getsize(path) else end
        f.seek(lo)
        buf = f.read(max(hi - lo, 0))
    if not buf.strip():
        return sp.csr_matrix((0, n_features or 0)), np.zeros(0), {}
    try:
        X, y = _fast(buf, zero_based, n_features)
        return X, y, {}
    except (ValueError, OverflowError):
        return _slow(buf, path, line_number(path, lo), zero_based, n_features, on_bad_row)


def scan(path: str, on_bad_row="error"):
    """One pass over the file: ``(n_rows, min_index, max_index)`` of the raw indices."""
    n, lo, hi = 0, None, -1
    for a, b in chunks(path, 0, os.path.getsize(path)):
        X, _, _ = parse_range(path, a, b, zero_based=True, n_features=None, on_bad_row=on_bad_row)
        n += X.shape[0]
        if X.nnz:
            lo = int(X.indices.min()) if lo is None else min(lo, int(X.indices.min()))
            hi = max(hi, int(X.indices.max()))
    return n, lo, hi


def parse_raw(path, start, end, on_bad_row="error", chunk_bytes=CHUNK_BYTES):
    """The lines of ``[start, end)`` with their indices as written (no base, no width):
    ``(data, indices, indptr, y, skipped, bytes)``, so workers can agree on the base and
    width from their own shards (min and max index, allreduced) without reading the file."""
    data, indices, indptr, ys, skipped, nbytes = [], [], [np.zeros(1, np.int64)], [], {}, 0
    offset = 0
    for a, b in chunks(path, start, end, chunk_bytes):
        X, y, bad = parse_range(path, a, b, zero_based=True, n_features=None, on_bad_row=on_bad_row)
        nbytes += b - a
        for k, v in bad.items():
            skipped[k] = skipped.get(k, 0) + v
        data.append(X.data)
        indices.append(X.indices.astype(np.int64))
        indptr.append(X.indptr[1:].astype(np.int64) + offset)
        offset += X.nnz
        ys.append(y)
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
    return (cat(data, np.float64), cat(indices, np.int64), np.concatenate(indptr), cat(ys, np.float64), skipped,
            nbytes)


def finish(path, data, indices, indptr, zero_based: bool, n_features: int, byte_range: tuple[int, int]):
    """CSR rows from ``parse_raw`` output of ``byte_range``, once the base and width are known.
    An index that does not fit them (0 in a 1-based file, beyond the model's width) is an error
    naming its line: the range is parsed again with the base and width, which finds it."""
    if (not zero_based and indices.size and indices.min() == 0) or (
            indices.size and indices.max() - (0 if zero_based else 1) >= n_features):
        for a, b in chunks(path, *byte_range):
            parse_range(path, a, b, zero_based=zero_based, n_features=n_features)
        raise DataError(f"{path}: an index does not fit {n_features} features, "
                        f"{'0' if zero_based else '1'}-based")  # not reached: the parse above names the line
    return sp.csr_matrix((data, indices - (0 if zero_based else 1), indptr), shape=(indptr.size - 1, n_features))
