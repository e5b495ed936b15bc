"""CSV (plain or gzip) and Parquet sources through pyarrow, streamed in record
batches so a shard bigger than memory is never loaded whole.

Labels are read as text and turned into numbers when every value is numeric, so
every worker and every block agrees on the label type. Feature columns are read
as float64 (categorical ones as text); a value that is not a number, a missing
value, NaN or Inf, or a row with the wrong number of fields is a ``DataError``
naming the file, line and column.

>>> import os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "d.csv")
>>> _ = open(p, "w").write("x,c,y\\n1,a,0\\n2,b,1\\n3,a,1\\n")
>>> t = TableSource(p, "csv", label="y", categorical=["c"])
>>> t.n_rows, t.encoder.feature_names()
(3, ['x', 'c=a', 'c=b'])
>>> X, y = t.read(); X.toarray().tolist(), y.tolist()
([[1.0, 1.0, 0.0], [2.0, 0.0, 1.0], [3.0, 1.0, 0.0]], [0, 1, 1])
"""
from __future__ import annotations

import gzip
import os
import re
import zlib

import numpy as np
import pyarrow as pa

from shardlearn.core.errors import DataError
from shardlearn.data.arrays_stack import stack
from shardlearn.data.encode import Encoder
from shardlearn.data.labels import numeric_labels
from shardlearn.data.shard import Shardable

BLOCK_BYTES = 16 << 20


class TableSource(Shardable):
    """Rows of a CSV file or a Parquet file/directory, as ``(X, y)`` blocks."""

    def __init__(self, path, fmt, label=None, *, features=None, categorical=None, encoding="onehot", hash_bits=18,
                 header=True, key=None, on_bad_row="error", encoder: Encoder | None = None, require_label=True,
                 delimiter: str | None = None):
        self.path, self.fmt, self.header, self.on_bad_row = path, fmt, header, on_bad_row
        self.delimiter = delimiter if delimiter is not None or fmt != "csv" else sniff_delimiter(path)
        self.skipped: dict = {}
        self.row_groups_read = 0
        names = self._column_names()
        self.label = resolve(path, names, label, "label", required=require_label)
        self.key = resolve(path, names, key, "key", required=key is not None)
        if encoder is not None:
            self.encoder = encoder
        else:
            cats = [resolve(path, names, c, "categorical", True) for c in (categorical or [])]
            chosen = [resolve(path, names, c, "feature", True) for c in features] if features else names
            numeric = [c for c in chosen if c not in cats and c not in (self.label, self.key)]
            vocab = None if encoding == "hash" else {c: self._vocab(c) for c in cats}
            self.encoder = Encoder(numeric, cats, vocab, hash_bits if encoding == "hash" else None)
        missing = [c for c in self.encoder.numeric + self.encoder.categorical if c not in names]
        if missing:
            raise DataError(f"{path}: column {missing[0]!r} the model was trained with is missing "
                            f"(columns: {', '.join(names)})")
        self.n_features = self.encoder.n_features
        self.n_rows = self._count_rows()

    # --- pyarrow plumbing ------------------------------------------------------
    def _open_bytes(self):
        if self.path.endswith(".gz"):
            return gzip.open(self.path, "rb")
        return open(self.path, "rb")

    def column_names(self) -> list[str]:
        """Every column of the file, in order."""
        return self._column_names()

    def _column_names(self) -> list[str]:
        if getattr(self, "_names", None) is None:
            self._names = self._read_column_names()
        return self._names

    def _read_column_names(self) -> list[str]:
        return column_names(self.path, self.fmt, self.header, self.delimiter)

    def _types(self, columns):
        enc = getattr(self, "encoder", None)
        if enc is None:  # still building the encoder: vocabularies are read as text
            return {c: pa.string() for c in columns}
        # skip mode reads numbers as text, so a word in a numeric column drops its row, not the whole block
        number = pa.string() if self.on_bad_row == "skip" else pa.float64()
        t = {c: number for c in enc.numeric if c in columns}
        t.update({c: pa.string() for c in self.encoder.categorical if c in columns})
        for c in (self.label, self.key):
            if c is not None and c in columns:
                t[c] = pa.string()
        return t

    def _batches(self, columns, rows=None, bad_lines=None):
        """Record batches of ``columns`` with the global row number of their first row.
        Parquet row groups holding none of ``rows`` are not read at all; CSV lines with the
        wrong number of fields go to ``bad_lines`` (their line numbers) in skip mode."""
        if self.fmt == "parquet":
            yield from self._parquet_batches(columns, rows)
        else:
            yield from self._csv_batches(columns, bad_lines)

    def _parquet_batches(self, columns, rows):
        import pyarrow.dataset as ds

        start = 0
        for fragment in ds.dataset(self.path, format="parquet").get_fragments():
            for group in fragment.split_by_row_group():
                n = group.row_groups[0].num_rows
                if rows is None or np.searchsorted(rows, start) < np.searchsorted(rows, start + n):
                    self.row_groups_read += 1
                    row0 = start
                    for batch in group.to_table(columns=list(columns)).to_batches():
                        yield row0, batch
                        row0 += batch.num_rows
                start += n

    def _csv_batches(self, columns, bad_lines=None):
        import pyarrow.csv as pcsv

        bad = []

        def handler(row):
            bad.append(row)
            return "skip" if self.on_bad_row == "skip" else "error"

        names = self._column_names()
        ropts = pcsv.ReadOptions(use_threads=False, block_size=BLOCK_BYTES, column_names=names,
                                 skip_rows=1 if self.header else 0)
        copts = pcsv.ConvertOptions(include_columns=list(columns), column_types=self._types(columns),
                                    null_values=[""], strings_can_be_null=False)
        start = 0
        try:
            with self._open_bytes() as f:
                parse = pcsv.ParseOptions(delimiter=self.delimiter, invalid_row_handler=handler)
                reader = pcsv.open_csv(f, read_options=ropts, parse_options=parse, convert_options=copts)
                for batch in reader:
                    yield start, batch
                    start += batch.num_rows
        except (pa.ArrowException, UnicodeDecodeError) as e:
            raise self._csv_error(e, bad) from None
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"{self.path}: the file is truncated or corrupt ({e}); no rows were used") from None
        if bad_lines is not None:
            bad_lines.extend(r.number for r in bad)

    def _csv_error(self, e, bad):
        if bad and self.on_bad_row != "skip":
            r = bad[-1]
            line = r.number if r.number is not None else "?"
            return DataError(f"{self.path}: line {line}: {r.actual_columns} fields, expected {r.expected_columns}")
        msg = str(e)
        m = re.search(r"In CSV column #(\d+): Row #(\d+): CSV conversion error to \w+: invalid value '(.*)'", msg)
        if m:
            col, line, value = int(m.group(1)), int(m.group(2)), m.group(3)
            name = self._column_names()[col] if col < len(self._column_names()) else col
            return DataError(f"{self.path}: line {line}, column {col + 1} ({name!r}): {value!r} is not a number; "
                             "expected a number (list text columns in categorical=...)")
        return DataError(f"{self.path}: not valid CSV: {(msg.splitlines() or [type(e).__name__])[0]}")

    # --- metadata ------------------------------------------------------------------
    def _count_rows(self) -> int:
        if self.fmt == "parquet":
            import pyarrow.dataset as ds

            n = ds.dataset(self.path, format="parquet").count_rows()
        else:
            first = self.encoder.numeric[:1] or [self.label or self._column_names()[0]]
            n = sum(b.num_rows for _, b in self._batches(first))
        if n == 0:
            raise DataError(f"{self.path}: no data rows (header only?)")
        return n

    def _vocab(self, column) -> list[str]:
        values = set()
        for _, b in self._batches([column]):
            values.update(v for v in b.column(0).unique().to_pylist() if v is not None)
        return sorted(values)

    def column(self, name) -> np.ndarray:
        """One whole column as text (labels for stratified splits, keys for hash splits)."""
        return np.concatenate([b.column(0).to_numpy(zero_copy_only=False) for _, b in self._batches([name])])

    def labels(self) -> np.ndarray:
        return numeric_labels(self.column(self.label))

    def keys(self):
        return None if self.key is None else self.column(self.key)

    # --- rows ---------------------------------------------------------------------
    def _convert(self, batch, rownums):
        """``(X, y)`` of a batch whose rows are the file's rows ``rownums`` (0-based)."""
        keep = np.ones(batch.num_rows, dtype=bool)

        def bad_rows(mask, column, message, reason):
            """Raise on the first bad row, or (on_bad_row="skip") drop them and count why."""
            if not mask.any():
                return
            if self.on_bad_row != "skip":
                r = int(np.flatnonzero(mask)[0])
                raise DataError(f"{self.path}: {self._where(int(rownums[r]), column)}: {message(r)}")
            self.skipped[reason] = self.skipped.get(reason, 0) + int((mask & keep).sum())
            keep[mask] = False

        cols = {}
        for c in self.encoder.numeric:
            col = batch.column(c)
            if pa.types.is_string(col.type) and self.on_bad_row == "skip":
                v, null, text = _numbers(col)
                bad_rows(text, c, lambda r: "not a number", "not a number")
            elif not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)):
                raise DataError(f"{self.path}: {self._where(int(rownums[0]), c)}: type {col.type}; expected numbers "
                                "(list text columns in categorical=...)")
            else:
                null = col.is_null().to_numpy(zero_copy_only=False)
                v = col.to_numpy(zero_copy_only=False).astype(np.float64)
            bad_rows(null, c, lambda r: "missing value; expected a number", "missing value")
            nonfinite = ~np.isfinite(v) & ~null
            bad_rows(nonfinite, c, lambda r, v=v: f"{v[r]} is not finite (NaN and Inf are not accepted)",
                     "NaN or Inf")
            cols[c] = v
        for c in self.encoder.categorical:
            cols[c] = batch.column(c).fill_null("").to_numpy(zero_copy_only=False).astype(str)
        y = None
        if self.label is not None:
            ycol = batch.column(self.label)
            yv = ycol.to_numpy(zero_copy_only=False)
            missing = ycol.is_null().to_numpy(zero_copy_only=False)
            if pa.types.is_string(ycol.type) or pa.types.is_large_string(ycol.type):
                missing = missing | (yv == "")
            bad_rows(missing, self.label, lambda r: "missing label", "missing label")
            y = numeric_labels(yv[keep])
        if not keep.all():
            cols = {k: v[keep] for k, v in cols.items()}
        return self.encoder.transform(cols), y, keep

    def _where(self, row, column) -> str:
        col = self._column_names().index(column) + 1
        if self.fmt == "csv":
            return f"line {row + 1 + int(self.header)}, column {col} ({column!r})"
        return f"row {row + 1}, column {col} ({column!r})"

    def blocks(self, rows=None, passthrough=(), into=None):
        """``(X, y)`` per record batch, keeping only ``rows`` (sorted global indices, or None for
        all); the kept rows' values of the ``passthrough`` columns are appended to ``into[column]``."""
        wanted = self.encoder.numeric + self.encoder.categorical + ([self.label] if self.label is not None else [])
        passthrough = list(dict.fromkeys(resolve(self.path, self.column_names(), c, "id", True) for c in passthrough))
        bad_lines: list = []
        for row0, batch in self._batches(list(dict.fromkeys(wanted + passthrough)), rows, bad_lines):
            n = batch.num_rows
            rownums = np.arange(row0, row0 + n)
            if rows is not None:
                lo, hi = np.searchsorted(rows, [row0, row0 + n])
                if lo == hi:
                    continue
                rownums = rows[lo:hi]
                batch = batch.take(pa.array(rownums - row0))
            X, y, keep = self._convert(batch, rownums)
            for c in passthrough:
                into.setdefault(c, []).append(batch.column(c).to_numpy(zero_copy_only=False)[keep])
            yield X, y
        mine = _owned(bad_lines, rows, int(self.header), self.n_rows)
        if mine:
            self.skipped["wrong number of fields"] = self.skipped.get("wrong number of fields", 0) + mine

    def read(self, rows=None, passthrough=(), into=None):
        """The rows (all, or ``rows``) in memory; ``passthrough`` columns' values go to ``into``."""
        parts: dict = {}
        out = stack(list(self.blocks(rows, passthrough, parts)), self.n_features, self.label is not None)
        if into is not None:
            into.update({c: np.concatenate(v) for c, v in parts.items()})
        return out


def sniff_delimiter(path: str) -> str:
    r"""The field separator of a CSV file: among comma, tab, semicolon and bar, the one the first
    line holds most of (a comma when it holds none: one column).

    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "d.tsv"); _ = open(p, "w").write("a\tb;c\tt\n")
    >>> sniff_delimiter(p) == "\t"
    True
    """
    try:
        with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
            first = f.readline(1 << 20)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot be read ({e})") from None
    counts = {d: first.count(d.encode()) for d in (",", "\t", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def column_names(path: str, fmt: str, header: bool = True, delimiter: str | None = None) -> list[str]:
    """The columns of a CSV file (its header line, or ``0, 1, ...`` without one) or of Parquet
    data, reading no rows."""
    import pyarrow.csv as pcsv

    if fmt == "parquet":
        import pyarrow.dataset as ds

        if os.path.isdir(path) and not any(n.endswith((".parquet", ".pq")) for _, _, files in os.walk(path)
                                           for n in files):
            raise DataError(f"{path}: a directory with no Parquet files; expected a data file or a directory "
                            "of .parquet files")
        try:
            return list(ds.dataset(path, format="parquet").schema.names)
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{path}: not readable as Parquet ({(str(e).splitlines() or [''])[0]})") from None
    try:
        with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
            first = f.readline()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot be read ({e})") from None
    if not first.strip():
        raise DataError(f"{path}: the file is empty; expected a CSV header or data")
    try:
        fields = pcsv.read_csv(pa.BufferReader(first), read_options=pcsv.ReadOptions(
            autogenerate_column_names=not header), parse_options=pcsv.ParseOptions(
            delimiter=delimiter or ",")).column_names
    except (pa.ArrowException, UnicodeDecodeError) as e:
        raise DataError(f"{path}: line 1: not a valid CSV header ({(str(e).splitlines() or [''])[0]})") from None
    return [str(i) for i in range(len(fields))] if not header else list(fields)


_NUMBER = r"(?i)^[+-]?((\d+\.?\d*|\.\d+)(e[+-]?\d+)?|inf|infinity|nan)$"


def _numbers(col):
    """A text column read as numbers: ``(float64 values, missing mask, not-a-number mask)``."""
    import pyarrow.compute as pc

    text = pc.utf8_trim_whitespace(col)
    missing = pc.or_kleene(pc.is_null(text), pc.equal(text, "")).fill_null(True)
    ok = pc.match_substring_regex(text, _NUMBER).fill_null(False)
    words = pc.and_(pc.invert(ok), pc.invert(missing))
    values = pc.cast(pc.if_else(ok, text, "0"), pa.float64())
    return (values.to_numpy(zero_copy_only=False), missing.to_numpy(zero_copy_only=False),
            words.to_numpy(zero_copy_only=False))


def _owned(bad_lines, rows, header: int, n_rows: int) -> int:
    """How many of the lines the CSV parser dropped (wrong number of fields) belong to the shard
    ``rows`` (None: the whole file): a dropped line belongs to the shard that owns the row
    after it, so every worker's counts add up to the file's."""
    if not bad_lines:
        return 0
    lines = np.asarray([-1 if n is None else n for n in bad_lines], dtype=np.int64)
    if rows is None:
        return int(lines.size)
    after = np.clip(lines - 1 - header - np.arange(lines.size), 0, max(n_rows - 1, 0))
    pos = np.searchsorted(rows, after)
    return int(np.sum((pos < len(rows)) & (rows[np.minimum(pos, len(rows) - 1)] == after)))


def resolve(path, names, col, what, required):
    if col is None:
        if required and what == "label":
            raise DataError(f"{path}: which column is the label? pass label= (--label) with a name or 0-based index "
                            f"(columns: {', '.join(names)})")
        return None
    if isinstance(col, str) and col not in names and col.lstrip("-").isdigit():
        col = int(col)
    if isinstance(col, (int, np.integer)):
        if not -len(names) <= col < len(names):
            raise DataError(f"{path}: {what} column index {col} is out of range for {len(names)} columns")
        return names[col]
    if col not in names:
        if not required:
            return None
        raise DataError(f"{path}: {what} column {col!r} not found (columns: {', '.join(names)})")
    return col
