"""One entry point for data: ``open`` returns a source that knows its row and
feature counts and hands out shards; a shard reads only its own rows (LIBSVM
byte ranges, Parquet row groups, memory-mapped arrays) and can stream them in
blocks instead of loading them whole.

>>> import numpy as np
>>> src = open(np.arange(20.0).reshape(10, 2), y=np.arange(10) % 2)
>>> src.n_rows, src.n_features
(10, 2)
>>> [src.shard(3, r).n_rows for r in range(3)]
[3, 3, 4]
>>> X, y = src.shard(2, 1, partition="stratified", seed=0).read(); sorted(y.tolist())
[0, 0, 1, 1, 1]
"""
from __future__ import annotations

import builtins
import gzip
import os

import numpy as np
import scipy.sparse as sp

from shardlearn.core.errors import ConfigError, DataError
from shardlearn.data import libsvm
from shardlearn.data.arrays import ArraySource, open_npy, open_npz
from shardlearn.data.arrays_stack import stack
from shardlearn.data.labels import numeric_labels
from shardlearn.data.shard import Shardable

FORMATS = ("auto", "csv", "libsvm", "npz", "npy", "parquet")


def detect_format(path: str) -> str:
    """Format from the file name, else from the first line (``i:v`` tokens mean LIBSVM)."""
    low = path.lower()
    for ext, fmt in ((".npz", "npz"), (".npy", "npy"), (".parquet", "parquet"), (".pq", "parquet"),
                     (".csv", "csv"), (".csv.gz", "csv"), (".tsv", "csv"), (".libsvm", "libsvm"),
                     (".svm", "libsvm"), (".svmlight", "libsvm")):
        if low.endswith(ext):
            return fmt
    if os.path.isdir(path):
        return "parquet"
    gz = low.endswith(".gz")
    try:
        with (gzip.open(path, "rb") if gz else builtins.open(path, "rb")) as f:
            head = f.readline(4096).split()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot be read ({e})") from None
    if len(head) > 1 and all(b":" in t for t in head[1:3]):
        return "libsvm"
    return "csv"


class LibsvmSource(Shardable):
    """A LIBSVM file; contiguous shards are line-aligned byte ranges."""

    def __init__(self, path, *, zero_based="auto", n_features=None, on_bad_row="error", chunk_bytes=libsvm.CHUNK_BYTES):
        if path.lower().endswith(".gz"):
            raise DataError(f"{path}: gzip LIBSVM is read by byte range; decompress it first (shardlearn train "
                            "does that itself)")
        self.path, self.on_bad_row, self.chunk_bytes = path, on_bad_row, chunk_bytes
        self.label, self.skipped, self.bytes_read = "label", {}, 0
        n_rows, lo, hi = libsvm.scan(path, on_bad_row=on_bad_row)
        if n_rows == 0:
            raise DataError(f"{path}: no data lines (only blank lines or comments)")
        self.zero_based = (lo == 0) if zero_based == "auto" else bool(zero_based)
        width = hi + 1 if self.zero_based else hi
        self.n_features = int(n_features) if n_features is not None else max(width, 0)
        if width > self.n_features:  # re-parse with the model's width: the error names the line
            for a, b in libsvm.chunks(path, 0, os.path.getsize(path)):
                self._parse(a, b)
        self.n_rows = n_rows

    def _parse(self, a, b):
        X, y, bad = libsvm.parse_range(self.path, a, b, zero_based=self.zero_based, n_features=self.n_features,
                                       on_bad_row=self.on_bad_row)
        self.bytes_read += b - a
        for k, v in bad.items():
            self.skipped[k] = self.skipped.get(k, 0) + v
        return X, numeric_labels(y)

    def byte_blocks(self, start, end):
        for a, b in libsvm.chunks(self.path, start, end, self.chunk_bytes):
            yield self._parse(a, b)

    def blocks(self, rows=None):
        row0 = 0
        for X, y in self.byte_blocks(0, os.path.getsize(self.path)):
            n = X.shape[0]
            if rows is None:
                yield X, y
            else:
                lo, hi = np.searchsorted(rows, [row0, row0 + n])
                if hi > lo:
                    yield X[rows[lo:hi] - row0], y[rows[lo:hi] - row0]
            row0 += n

    def labels(self):
        return np.concatenate([y for _, y in self.blocks()])

    def read(self, rows=None):
        return stack(list(self.blocks(rows)), self.n_features)


def open(data, label=None, *, y=None, format="auto", features=None, categorical=None, encoding="onehot",
         hash_bits=18, header=True, key=None, zero_based="auto", n_features=None, on_bad_row="error",
         encoder=None, require_label=True, delimiter=None):
    """Open a file, directory or in-memory object as a source of ``(X, y)`` rows.

    ``data``: a path (``.npy``/``.npz``, CSV or gzip CSV, Parquet file or directory,
    LIBSVM), a numpy array or scipy.sparse matrix (with ``y``), a pandas DataFrame or
    pyarrow Table (with ``label`` naming its column, or ``y``). ``delimiter``: a CSV
    file's field separator (None: found in its first line).
    """
    check_options(on_bad_row=on_bad_row, encoding=encoding, hash_bits=hash_bits, delimiter=delimiter)
    if isinstance(data, (str, os.PathLike)):
        return (_open_path(os.fspath(data), label, y, format, features, categorical, encoding, hash_bits,
                           header, key, zero_based, n_features, on_bad_row, encoder, require_label, delimiter))
    if hasattr(data, "to_pandas") and hasattr(data, "column_names"):  # pyarrow Table
        data = data.to_pandas()
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):  # pandas DataFrame
        if label is not None:
            if label not in data.columns:
                raise DataError(f"DataFrame: label column {label!r} not found (columns: {', '.join(map(str, data.columns))})")
            y, data = data[label].to_numpy(), data.drop(columns=[label])
        return (ArraySource(data.to_numpy(), y, where="DataFrame"))
    if isinstance(data, np.ndarray) or sp.issparse(data) or isinstance(data, list):
        return (ArraySource(data if not isinstance(data, list) else np.asarray(data), y))
    raise DataError(f"cannot read data of type {type(data).__name__}; expected a path, array, sparse matrix, "
                    "DataFrame or pyarrow Table")


def check_options(*, on_bad_row="error", encoding="onehot", hash_bits=18, delimiter=None, **_) -> None:
    """The reading options that need no file, checked at once (before any worker starts).

    >>> check_options(hash_bits=100)
    Traceback (most recent call last):
    ...
    shardlearn.core.errors.ConfigError: hash_bits must be an integer from 1 to 30 (2**bits hashed columns), got 100
    """
    if on_bad_row not in ("error", "skip"):
        raise ConfigError(f"on_bad_row must be 'error' or 'skip', got {on_bad_row!r}")
    if encoding not in ("onehot", "hash"):
        raise ConfigError(f"encoding must be 'onehot' or 'hash', got {encoding!r}")
    if not (isinstance(hash_bits, (int, np.integer)) and 1 <= hash_bits <= 30):
        raise ConfigError(f"hash_bits must be an integer from 1 to 30 (2**bits hashed columns), got {hash_bits!r}")
    if delimiter is not None and len(delimiter) != 1:
        raise ConfigError(f"delimiter must be one character (e.g. ',', ';' or a tab), got {delimiter!r}")


def precheck(data, label=None, *, format="auto", features=None, categorical=None, header=True,
             require_label=True, delimiter=None, **options) -> str:
    """What can be checked of a file cheaply, before any worker starts: the options, that the
    path exists and is data, its format, and (CSV, Parquet) that the columns named exist, from
    the header alone. Returns the format. Every worker still checks its own rows."""
    check_options(delimiter=delimiter, **options)
    path = _check_path(os.fspath(data), format)
    fmt = detect_format(path) if format == "auto" else format
    if fmt in ("csv", "parquet"):
        from shardlearn.data.tables import column_names, resolve, sniff_delimiter

        if fmt == "csv" and delimiter is None:
            delimiter = sniff_delimiter(path)
        names = column_names(path, fmt, header, delimiter)
        resolve(path, names, label, "label", required=require_label)
        for what, cols in (("feature", features), ("categorical", categorical)):
            for c in cols or []:
                resolve(path, names, c, what, True)
    return fmt


def _check_path(path, format) -> str:
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if format not in FORMATS:
        raise DataError(f"{path}: unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    if os.path.isdir(path) and format not in ("auto", "parquet"):
        raise DataError(f"{path}: a directory; {format} data is one file (a directory holds Parquet files)")
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise DataError(f"{path}: the file is empty")
    return path


def _open_path(path, label, y, format, features, categorical, encoding, hash_bits, header, key, zero_based,
               n_features, on_bad_row, encoder, require_label, delimiter):
    _check_path(path, format)
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "libsvm":
        return LibsvmSource(path, zero_based=zero_based, n_features=n_features, on_bad_row=on_bad_row)
    if fmt == "npz":
        return open_npz(path)
    if fmt == "npy":
        return open_npy(path, y)
    from shardlearn.data.tables import TableSource

    return TableSource(path, fmt, label, features=features, categorical=categorical, encoding=encoding,
                       hash_bits=hash_bits, header=header, key=key, on_bad_row=on_bad_row, encoder=encoder,
                       require_label=require_label, delimiter=delimiter)
