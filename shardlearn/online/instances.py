"""The instances of a prediction request, hashed as the learner hashed its examples.

Each instance is written in the learner's input format (``reading["format"]``):

- ``vw``: a line of Vowpal Wabbit text, the label optional (``|a x:1 y``), parsed by the
  same compiled parser as the stream (``data/vwtext.py``);
- ``jsonl``: a JSON object, every field but the label a feature (``online/features.py``);
- ``csv``: a row as an array, in the order of the learner's CSV header, with or without the
  label's column; each column read as the learner read it (a number, or text as a category);
- ``libsvm``: a line ``[label] index:value ...``.

What cannot be read raises ``InstanceError`` naming the instance and the field (the server
answers 422 with it), never a half-hashed row. The rows come back as ``Rows``: CSR arrays
without scipy's construction checks, which cost a one-row request more than its parse
(``Rows.csr()`` is the scipy matrix).

>>> X = rows(["|a x:2 y", "1 |a x"], {"format": "vw"}, bits=8)
>>> X.shape, X.nnz
((2, 256), 3)
>>> rows([["5", 1.5]], {"format": "csv", "label": "y", "columns": ["y", "a"], "kinds": {"y": "number", "a": "number"}},
...      bits=8).data.tolist()
[1.5]
>>> rows([{"a": "x", "b": [1]}], {"format": "jsonl", "label": "y"}, bits=8)
Traceback (most recent call last):
...
shardlearn.online.instances.InstanceError: instances[0].b: value [1] is neither a number, a string nor None
"""
from __future__ import annotations

import math
from numbers import Real
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from shardlearn.core.errors import DataError
from shardlearn.data import vwtext
from shardlearn.data.interactions import expand as interactions_expand
from shardlearn.online import features


class Rows(NamedTuple):
    """Hashed rows in CSR form, as plain arrays (``format`` says so to the scorer)."""
    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple
    format: str = "csr"

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def csr(self) -> sp.csr_matrix:
        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)

    @classmethod
    def of(cls, X) -> "Rows":
        X = sp.csr_matrix(X)
        return cls(X.data, X.indices, X.indptr, X.shape)


class InstanceError(ValueError):
    """An instance the model cannot read: ``index`` of the instance, ``field`` (or None), why."""

    def __init__(self, index: int, field, message: str):
        self.index, self.field, self.message = index, field, message
        where = f"instances[{index}]" + (f".{field}" if field is not None else "")
        super().__init__(f"{where}: {message}")


def rows(instances: list, reading: dict, bits: int, interactions=()) -> Rows:
    """The instances as CSR rows of ``2**bits`` hashed columns (with the namespace interactions)."""
    fmt = reading["format"]
    if fmt in ("vw", "libsvm"):
        return _text(instances, fmt, bits, interactions)
    if fmt == "csv":
        return Rows.of(_csv(instances, reading, bits, interactions))
    return Rows.of(_objects(instances, reading.get("label"), bits, interactions))


def text(instances: list, fmt: str = "vw") -> bytes:
    """Instances that are each one line of text, as one buffer of lines (what the parser reads)."""
    for i, line in enumerate(instances):
        if not isinstance(line, str):
            raise InstanceError(i, None, f"expected a line of {fmt} text, got {_kind(line)}")
        if "\n" in line or "\r" in line:
            raise InstanceError(i, None, "expected one line; this one holds a line break")
    return ("\n".join(instances) + "\n").encode()


def _text(instances, fmt, bits, interactions):
    buf = text(instances, fmt)
    if fmt == "libsvm":
        return Rows.of(_libsvm(instances, bits, interactions))
    parsed = vwtext.parse(buf, bits)
    if parsed.status.size and parsed.status.max() > vwtext.NO_LABEL:  # a prediction needs no label
        r = int(np.flatnonzero(parsed.status > vwtext.NO_LABEL)[0])
        raise InstanceError(int(parsed.lines[r]), None, vwtext.bad_line(parsed, r, buf))
    if parsed.labels.size != len(instances):  # an empty line is no example
        empty = next(i for i, line in enumerate(instances) if not line.strip())
        raise InstanceError(empty, None, "expected an example, got an empty line")
    indptr, indices, values = parsed.indptr, parsed.indices, parsed.values
    if interactions:
        indptr, indices, values = interactions_expand(indptr, indices, values, parsed.letters, interactions, bits)
    return Rows(values, indices, indptr, (len(instances), 1 << bits))


def _libsvm(instances, bits, interactions):
    out = []
    for i, line in enumerate(instances):
        obj = {}
        for k, token in enumerate(line.split()):
            name, colon, value = token.partition(":")
            if not colon:
                if k == 0:
                    continue  # the label
                raise InstanceError(i, None, f"expected index:value, got {token!r}")
            try:
                obj[name] = float(value)
            except ValueError:
                raise InstanceError(i, name, f"value {value!r} is not a number") from None
        out.append(obj)
    X = _objects(out, None, bits, ())
    if interactions:  # LIBSVM has one namespace, the default one
        p, j, v = interactions_expand(X.indptr, X.indices, X.data, np.full(X.nnz, 32, np.uint8), interactions, bits)
        X = sp.csr_matrix((v, j, p), shape=X.shape)
    return X


def _objects(instances, label, bits, interactions):
    idx, val, lengths = [], [], []
    for i, obj in enumerate(instances):
        if not isinstance(obj, dict):
            raise InstanceError(i, None, f"expected a JSON object of features, got {_kind(obj)}")
        x = {k: v for k, v in obj.items() if k != label}
        for name, value in x.items():
            inner = value.items() if isinstance(value, dict) else [(None, value)]
            for sub, v in inner:
                if v is not None and not isinstance(v, (str, Real)) or isinstance(v, bool):
                    field = name if sub is None else f"{name}.{sub}"
                    raise InstanceError(i, field, f"value {v!r} is neither a number, a string nor None")
                if isinstance(v, float) and math.isinf(v):
                    raise InstanceError(i, name if sub is None else f"{name}.{sub}", f"value {v!r} is not finite")
        try:
            j, v = features.one(x, bits, interactions)
        except DataError as e:
            raise InstanceError(i, None, str(e)) from None
        idx.append(j)
        val.append(v)
        lengths.append(j.size)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    cat = (lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dtype=dt))
    return sp.csr_matrix((cat(val, np.float64), cat(idx, np.int32), indptr), shape=(len(instances), 1 << bits))


def _csv(instances, reading, bits, interactions):
    names, label, kinds = list(reading["columns"]), reading.get("label"), reading.get("kinds") or {}
    features_only = [n for n in names if n != label]
    cols = {n: [] for n in features_only}
    for i, row in enumerate(instances):
        if not isinstance(row, list):
            raise InstanceError(i, None, f"expected a CSV row as an array, got {_kind(row)}")
        if len(row) == len(names):
            pairs = zip(names, row)
        elif len(row) == len(features_only):
            pairs = zip(features_only, row)
        else:
            raise InstanceError(i, None, f"expected {len(features_only)} values ({', '.join(features_only)}), "
                                         f"or {len(names)} with the label, got {len(row)}")
        for name, v in pairs:
            if name == label:
                continue
            cols[name].append(_cell(i, name, v, kinds.get(name, "number")))
    table = {n: (np.array(c, dtype=np.float64) if kinds.get(n, "number") == "number" else np.array(c, dtype=object))
             for n, c in cols.items()}
    if not table:
        return sp.csr_matrix((len(instances), 1 << bits))
    return features.rows(table, bits, interactions)


def _cell(i, name, v, kind):
    """One CSV cell as the learner's reader took it: a number column's value a float (empty or
    null: missing), a text column's value its text (a category)."""
    if v is None or v == "":
        return np.nan if kind == "number" else None
    if isinstance(v, bool) or not isinstance(v, (str, Real)):
        raise InstanceError(i, name, f"expected a number or a string, got {_kind(v)}")
    if kind == "number":
        try:
            x = float(v)
        except ValueError:
            raise InstanceError(i, name, f"expected a number (a numeric column when learned), got {v!r}") from None
        if math.isinf(x):
            raise InstanceError(i, name, f"value {v!r} is not finite")
        return x
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _kind(v) -> str:
    return {dict: "an object", list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(v), "a number")
