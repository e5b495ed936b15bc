"""Feature dicts and tables hashed into ``2**bits`` columns, the way an online learner
sees its input (Weinberger et al. 2009, "Feature hashing for large scale multitask
learning"; Vowpal Wabbit's namespaces).

A feature dict maps names to values: a number is the feature's value, a string is a
category (the feature ``name=value`` with value 1), ``None`` or NaN is missing (skipped,
as pandas marks a missing cell), an infinite value is an error, and a
nested dict is a *namespace*: its features hash with the namespace's own seed, so
``{"user": {"id": 3}}`` and ``{"ad": {"id": 3}}`` land in different columns. A table
(numpy, scipy.sparse, pandas) is the same thing row by row: column ``j`` is the feature
named by the column's label (pandas) or ``j`` itself, so ``rows(X)`` and ``one(x)`` over
each row's dict give the same columns in the same order.

>>> idx, val = one({"age": 31, "city": "Oslo", "ad": {"id": 3}}, bits=18)
>>> len(idx), val.tolist()
(3, [31.0, 1.0, 3.0])
>>> bool(one({"id": 3}, 18)[0][0] != one({"ad": {"id": 3}}, 18)[0][0])
True
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np
import scipy.sparse as sp
from sklearn.utils import murmurhash3_32

from shardlearn.core.errors import DataError
from shardlearn.data.interactions import expand as interactions_expand


def seed(namespace: str) -> int:
    """The hash seed of a namespace (0: the default, unnamed one)."""
    return murmurhash3_32(namespace, seed=0, positive=True) if namespace else 0


def column(name, namespace: str, bits: int) -> int:
    """The column of feature ``name`` (any label, as ``str``) in ``namespace``: a name of ASCII
    digits (at most 18) is its number plus the namespace's seed, as Vowpal Wabbit hashes such
    names (so a table's column ``j`` or LIBSVM's index ``j`` is column ``j``: no collisions
    below ``2**bits``), any other name its MurmurHash3 with that seed."""
    text = str(name)
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return (int(text) + seed(namespace)) & ((1 << bits) - 1)
    return murmurhash3_32(text, seed=seed(namespace), positive=True) & ((1 << bits) - 1)


def _entry(name, value, namespace: str, bits: int):
    if value is None:
        return None
    if isinstance(value, str):
        return column(f"{name}={value}", namespace, bits), 1.0
    if not isinstance(value, (Real, np.number)):
        raise DataError(f"feature {name!r}: value {value!r} is neither a number, a string nor None")
    v = float(value)
    if math.isinf(v):
        raise DataError(f"feature {name!r}: value {value!r} is not finite")
    return (column(name, namespace, bits), v) if v != 0.0 and not math.isnan(v) else None


def _initial(namespace: str) -> int:
    """A namespace's initial as ``-q`` names it (a space for the default namespace, as in VW)."""
    return namespace.encode()[0] if namespace else 32


def _interact(X: sp.csr_matrix, letters: np.ndarray, interactions, bits: int) -> sp.csr_matrix:
    if not interactions:
        return X
    p, i, v = interactions_expand(X.indptr, X.indices, X.data, letters, interactions, bits)
    return sp.csr_matrix((v, i, p), shape=(X.shape[0], 1 << bits))


def one(x: dict, bits: int, interactions=()) -> tuple[np.ndarray, np.ndarray]:
    """Columns and values of one feature dict, in the dict's order (zeros and ``None`` left out),
    then its namespace ``interactions`` (VW's ``-q``: ``["ab"]``; ``data/interactions.py``)."""
    if not isinstance(x, dict):
        raise DataError(f"an example's features are a dict of name -> value, got {type(x).__name__}")
    out, letters = [], []
    for name, value in x.items():
        if isinstance(value, dict):
            got = [e for e in (_entry(n, v, str(name), bits) for n, v in value.items()) if e is not None]
            out += got
            letters += [_initial(str(name))] * len(got)
        else:
            e = _entry(name, value, "", bits)
            if e is not None:
                out.append(e)
                letters.append(32)
    idx = np.fromiter((e[0] for e in out), dtype=np.int32, count=len(out))
    val = np.fromiter((e[1] for e in out), dtype=np.float64, count=len(out))
    if interactions:
        _, idx, val = interactions_expand(np.array([0, idx.size]), idx, val, np.array(letters, dtype=np.uint8),
                                          interactions, bits)
    return idx, val


def rows(X, bits: int, interactions=()) -> sp.csr_matrix:
    """A table's rows hashed: numeric columns by their label, string columns (pandas) as
    categories. One hash per column (per distinct value for a string column), never per cell.
    A dict of columns works too, a nested dict being a namespace of columns (JSON lines).
    ``interactions`` as in ``one``."""
    if isinstance(X, dict):
        flat = [f for c, v in X.items() for f in ([(c, "", v)] if not isinstance(v, dict)
                                                  else [(n, str(c), w) for n, w in v.items()])]
        n = len(flat[0][2]) if flat else 0
        blocks = [_pandas_column(col, name, bits, n, ns) for name, ns, col in flat]
        return _fold(sp.hstack(blocks, format="csr") if blocks else sp.csr_matrix((n, 0)), bits,
                     [_initial(ns) for _, ns, _ in flat], interactions)
    names = list(X.columns) if hasattr(X, "columns") else None
    if names is not None:
        blocks = [_pandas_column(X[c], c, bits, X.shape[0]) for c in names]
        out = sp.hstack(blocks, format="csr") if blocks else sp.csr_matrix((X.shape[0], 0))
        return _fold(out, bits, [32] * len(names), interactions)
    X = sp.csr_matrix(X, dtype=np.float64, copy=True)  # its NaN are dropped below: never the caller's array
    bad = np.isinf(X.data)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        r = int(np.searchsorted(X.indptr, k, side="right") - 1)
        raise DataError(f"row {r}, column {int(X.indices[k])}: value {X.data[k].item()!r} is not finite")
    cols = np.array([column(j, "", bits) for j in range(X.shape[1])], dtype=np.int64)
    X.data[np.isnan(X.data)] = 0.0  # missing
    X.eliminate_zeros()
    H = sp.csr_matrix((X.data, cols[X.indices] if cols.size else X.indices, X.indptr), shape=(X.shape[0], 1 << bits))
    return _interact(H, np.full(H.nnz, 32, dtype=np.uint8), interactions, bits)


def _pandas_column(col, name, bits: int, n: int, namespace: str = "") -> sp.csr_matrix:
    values = np.asarray(col)
    if values.dtype.kind in "OUS":  # categories: hash each distinct value once
        present = np.array([v is not None and not (isinstance(v, float) and math.isnan(v)) for v in values])
        if not all(isinstance(v, str) for v in values[present]):
            r = int(np.flatnonzero([not isinstance(v, str) for v in values[present]])[0])
            raise DataError(f"row {int(np.flatnonzero(present)[r])}, column {name!r}: mixes strings and other values")
        uniq, inverse = np.unique(values[present].astype(str), return_inverse=True)
        cols = np.array([column(f"{name}={u}", namespace, bits) for u in uniq], dtype=np.int64)
        rows_ = np.flatnonzero(present)
        return sp.csr_matrix((np.ones(rows_.size), (rows_, cols[inverse])), shape=(n, 1 << bits))
    v = values.astype(np.float64)
    bad = np.isinf(v)
    if bad.any():
        raise DataError(f"row {int(np.flatnonzero(bad)[0])}, column {name!r}: value is not finite")
    keep = np.flatnonzero(~np.isnan(v) & (v != 0.0))  # NaN in a table column: missing, as None in a dict
    return sp.csr_matrix((v[keep], (keep, np.full(keep.size, column(name, namespace, bits)))), shape=(n, 1 << bits))


def _fold(X: sp.csr_matrix, bits: int, initials: list, interactions=()) -> sp.csr_matrix:
    """The hstack of per-column blocks, each ``2**bits`` wide, folded onto one ``2**bits``
    width, keeping each row's entries in column order (a dict's order); ``initials``: each
    block's namespace initial, for the interactions."""
    width = 1 << bits
    X = X.tocsr()
    H = sp.csr_matrix((X.data, X.indices % width, X.indptr), shape=(X.shape[0], width))
    if not interactions:
        return H
    return _interact(H, np.asarray(initials, dtype=np.uint8)[X.indices // width], interactions, bits)
