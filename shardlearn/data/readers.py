"""Whole-file readers: LIBSVM (scikit-learn's loader), CSV and Parquet (pyarrow),
and ``.npz``. Each returns ``(X, y)`` with ``X`` a float64 array or CSR matrix.

These are the simple readers of the core issue; the data issue replaces them
with partitioned, out-of-core ones behind the same ``read``.

>>> import os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "d.csv")
>>> _ = open(p, "w").write("a,b,y\\n1,2,0\\n3,4,1\\n")
>>> X, y = read(p, label="y")
>>> X.tolist(), y.tolist()
([[1.0, 2.0], [3.0, 4.0]], [0, 1])
"""
from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

from shardlearn.core.errors import DataError

FORMATS = ("auto", "csv", "libsvm", "npz", "parquet")


def detect_format(path: str) -> str:
    """Format from the file name, else from the first line (``i:v`` tokens mean LIBSVM)."""
    low = path.lower()
    for ext, fmt in ((".npz", "npz"), (".parquet", "parquet"), (".pq", "parquet"), (".csv", "csv"),
                     (".csv.gz", "csv"), (".tsv", "csv"), (".libsvm", "libsvm"), (".svm", "libsvm")):
        if low.endswith(ext):
            return fmt
    if os.path.isdir(path):
        return "parquet"
    with open(path, "rb") as f:
        head = f.readline(4096).split()
    return "libsvm" if len(head) > 1 and all(b":" in t for t in head[1:3]) else "csv"


def read(path: str, label=None, format: str = "auto", n_features: int | None = None, require_label: bool = True):
    """Read a whole file into memory; ``label`` names (or indexes) the label column of
    CSV and Parquet files; ``n_features`` fixes the width of LIBSVM data. With
    ``require_label=False`` a table without that column gives ``y = None``."""
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if format not in FORMATS:
        raise DataError(f"{path}: unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if format == "auto" else format
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise DataError(f"{path}: the file is empty")
    if fmt == "libsvm":
        return _read_libsvm(path, n_features)
    if fmt == "npz":
        return _read_npz(path)
    return _read_table(path, fmt, label, require_label)


def _read_libsvm(path, n_features):
    from sklearn.datasets import load_svmlight_file

    try:
        X, y = load_svmlight_file(path, n_features=n_features, dtype=np.float64)
    except ValueError as e:
        msg = str(e)
        if "n_features was set to" in msg:
            msg = f"a feature index is beyond the model's {n_features} features ({msg})"
        raise DataError(f"{path}: not valid LIBSVM data: {msg}") from None
    return X.tocsr(), _labels(y)


def _read_npz(path):
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    with z:
        keys = set(z.files)
        if "y" not in keys:
            raise DataError(f"{path}: no array 'y'; a data .npz holds y and X (or data, indices, indptr, shape)")
        y = z["y"]
        if "X" in keys:
            X = np.asarray(z["X"])
            if X.ndim != 2:
                raise DataError(f"{path}: X has {X.ndim} dimensions; expected 2")
        elif {"data", "indices", "indptr", "shape"} <= keys:
            try:
                X = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
            except ValueError as e:
                raise DataError(f"{path}: CSR arrays are inconsistent ({e})") from None
        else:
            raise DataError(f"{path}: holds {sorted(keys)}; expected X, or data, indices, indptr and shape")
    if X.shape[0] != y.shape[0]:
        raise DataError(f"{path}: X has {X.shape[0]} rows but y has {y.shape[0]}")
    if X.dtype.kind not in "fiub":
        raise DataError(f"{path}: X has dtype {X.dtype}; expected numbers")
    return X.astype(np.float64, copy=False), _labels(y)


def _read_table(path, fmt, label, require_label=True):
    import pyarrow as pa

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            import pyarrow.csv as pcsv

            table = pcsv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{path}: cannot be read as {fmt}: {str(e).splitlines()[0]}") from None
    if table.num_rows == 0:
        raise DataError(f"{path}: no data rows")
    names = table.column_names
    label = _label_name(path, names, label, require_label)
    y = None if label is None else table.column(label).to_numpy(zero_copy_only=False)
    cols = []
    for j, name in enumerate(names):
        if name == label:
            continue
        col = table.column(name)
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)):
            raise DataError(f"{path}: column {j + 1} ({name!r}) has type {col.type}; expected numbers")
        if col.null_count:
            row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"{path}: row {row + 1}, column {j + 1} ({name!r}): missing value; expected a number")
        cols.append(col.to_numpy(zero_copy_only=False).astype(np.float64))
    X = np.column_stack(cols) if cols else np.zeros((table.num_rows, 0))
    return X, None if y is None else _labels(y)


def _label_name(path, names, label, required):
    if label is None:
        if required:
            raise DataError(f"{path}: which column is the label? pass --label NAME or index "
                            f"(columns: {', '.join(names)})")
        return None
    if isinstance(label, str) and label not in names and label.lstrip("-").isdigit():
        label = int(label)
    if isinstance(label, int):
        if not -len(names) <= label < len(names):
            raise DataError(f"{path}: label index {label} out of range for {len(names)} columns")
        return names[label]
    if label not in names:
        if not required:
            return None
        raise DataError(f"{path}: label column {label!r} not found (columns: {', '.join(names)})")
    return label


def _labels(y):
    y = np.asarray(y)
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        return y.astype(np.int64)  # integral labels read as floats (LIBSVM) are class codes
    return y
