"""JSON lines read a block at a time by pyarrow's JSON reader, into plain columns: a
number or boolean field as float64 (NaN where null or absent), a string field as an
object array (None where null or absent), a nested object as a dict of its own columns
(a namespace). A block pyarrow cannot read as columns (a field that is a number on one
line and a string on another, a list, a line that is not JSON) gives None: the caller
then reads its lines one by one (``lines``), which names the bad ones.

>>> cols = columns(b'{"y": 1, "a": 2.5, "u": {"id": 3}}\\n\\n{"y": 0, "c": "NO", "u": {"id": 4}}\\n')
>>> cols["y"].tolist(), cols["a"].tolist(), cols["c"].tolist(), cols["u"]["id"].tolist()
([1.0, 0.0], [2.5, nan], [None, 'NO'], [3.0, 4.0])
>>> columns(b'{"a": 1}\\n{"a": "x"}\\n') is None
True
>>> lines(b'{"a": 1}\\n\\nnot json\\n')
[(0, {'a': 1}), (2, 'not JSON (Expecting value: line 1 column 1 (char 0))')]
"""
from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.json as pj


def _column(arr: pa.Array):
    t = arr.type
    if pa.types.is_struct(t):
        return {t.field(i).name: _column(arr.field(i)) for i in range(t.num_fields)}
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t):
        return arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return np.array(arr.to_pylist(), dtype=object)
    if pa.types.is_null(t):
        return np.full(len(arr), np.nan)
    return None  # lists, timestamps...: the line-by-line reader says what is wrong


def columns(buf: bytes) -> dict | None:
    """The block's fields as columns, or None when pyarrow cannot read it so."""
    try:
        table = pj.read_json(io.BytesIO(buf))
    except pa.ArrowInvalid:
        return None
    out = {}
    for name in table.column_names:
        col = _column(table.column(name).combine_chunks())
        if col is None or (isinstance(col, dict) and any(v is None for v in col.values())):
            return None
        out[name] = col
    return out


def lines(buf: bytes) -> list:
    """Each non-blank line's ``(index in the block, object)``, or ``(index, why it is not one)``."""
    out = []
    for i, raw in enumerate(buf.split(b"\n")):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            out.append((i, f"not JSON ({e})"))
            continue
        out.append((i, obj) if isinstance(obj, dict) else (i, f"a JSON {type(obj).__name__}, not an object"))
    return out
