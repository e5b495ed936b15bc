"""CSV lines read a block at a time against a fixed header, by pyarrow's CSV reader: each
column a number (float64, NaN where empty) or text (object, None where empty), the kind
decided by the first block and kept for every later one, so a column means the same thing
all stream long. A block pyarrow cannot read so (a word in a number column, a line with
the wrong field count) gives None: the caller reads its lines one by one (``lines``),
which names the bad ones.

>>> c = CsvLines(b"y,a,city\\n")
>>> cols = c.columns(b"1,2.5,Oslo\\n0,,Lima\\n")
>>> cols["y"].tolist(), cols["a"].tolist(), cols["city"].tolist(), c.kinds
([1.0, 0.0], [2.5, nan], ['Oslo', 'Lima'], {'y': 'number', 'a': 'number', 'city': 'text'})
>>> c.columns(b"1,x,Oslo\\n") is None
True
>>> c.lines(b"1,x,Oslo\\n0,3,\\n1,2\\n")
[(0, "column 'a': 'x' is not a number"), (1, {'y': 0.0, 'a': 3.0, 'city': None}), (2, 'expected 3 fields, got 2')]
"""
from __future__ import annotations

import csv
import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pc


class CsvLines:
    def __init__(self, header: bytes, delimiter: str = ","):
        text = header.decode("utf-8", "replace").rstrip("\r\n")
        self.names = next(csv.reader([text], delimiter=delimiter))
        self.delimiter = delimiter
        self.kinds: dict | None = None

    def _read(self, buf: bytes, types: dict | None):
        return pc.read_csv(io.BytesIO(buf), read_options=pc.ReadOptions(column_names=self.names),
                           parse_options=pc.ParseOptions(delimiter=self.delimiter),
                           convert_options=pc.ConvertOptions(column_types=types, strings_can_be_null=True))

    def columns(self, buf: bytes) -> dict | None:
        """The block's columns, or None when pyarrow cannot read it against the header's kinds."""
        if not buf.strip():
            return {n: np.zeros(0) for n in self.names}
        types = None if self.kinds is None else {n: pa.float64() if k == "number" else pa.string()
                                                  for n, k in self.kinds.items()}
        try:
            table = self._read(buf, types)
        except pa.ArrowInvalid:
            return None
        if self.kinds is None:  # the first block decides
            self.kinds = {n: "number" if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
                          or pa.types.is_null(t) else "text" for n, t in zip(table.column_names, table.schema.types)}
        out = {}
        for name in self.names:
            col = table.column(name)
            if self.kinds[name] == "number":
                out[name] = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
            else:
                out[name] = np.array(col.cast(pa.string()).to_pylist(), dtype=object)
        return out

    def lines(self, buf: bytes) -> list:
        """Each non-blank line's ``(index in the block, {column: value})``, or ``(index, why not)``."""
        parsed = [(i, next(csv.reader([raw.rstrip("\r")], delimiter=self.delimiter)))
                  for i, raw in enumerate(buf.decode("utf-8", "replace").split("\n")) if raw.strip()]
        whole = [f for _, f in parsed if len(f) == len(self.names)]
        if self.kinds is None:  # the first block, unreadable as columns: a column of mostly numbers is one
            self.kinds = {n: "number" if 2 * sum(_is_number(r[j]) for r in whole if r[j] != "") >=
                          sum(r[j] != "" for r in whole) else "text" for j, n in enumerate(self.names)}
        out = []
        for i, fields in parsed:
            if len(fields) != len(self.names):
                out.append((i, f"expected {len(self.names)} fields, got {len(fields)}"))
                continue
            row, why = {}, None
            for name, field in zip(self.names, fields):
                if field == "":
                    row[name] = None
                elif self.kinds[name] == "text":
                    row[name] = field
                elif _is_number(field):
                    row[name] = float(field)
                else:
                    why = f"column {name!r}: {field!r} is not a number"
                    break
            out.append((i, why if why else row))
        return out


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
