"""In-memory and memory-mapped array sources: numpy, scipy.sparse, pandas
DataFrames, pyarrow Tables, ``.npy`` and ``.npz`` files. ``.npy`` files and the
uncompressed members of ``.npz`` files (what ``np.savez`` writes) are memory-mapped,
so a worker touches only the pages of its rows.

>>> import numpy as np
>>> s = ArraySource(np.arange(12.0).reshape(6, 2), np.array([0, 1, 0, 1, 0, 1]))
>>> X, y = s.read(np.array([1, 4])); X.tolist(), y.tolist()
([[2.0, 3.0], [8.0, 9.0]], [1, 0])
"""
from __future__ import annotations

import zipfile

import numpy as np
import scipy.sparse as sp

from shardlearn.core.errors import DataError
from shardlearn.data.shard import Shardable

BLOCK_ROWS = 65536


def _check_matrix(X, where):
    if sp.issparse(X):
        X = X.tocsr()
        if X.dtype.kind not in "fiub":
            raise DataError(f"{where}: sparse matrix has dtype {X.dtype}; expected numbers")
        return X
    X = np.asarray(X) if not isinstance(X, np.memmap) else X
    if X.dtype == object:
        raise DataError(f"{where}: X has dtype object; expected a numeric array (convert with X.astype(float), "
                        "or pass text columns as categorical)")
    if X.dtype.kind not in "fiub":
        raise DataError(f"{where}: X has dtype {X.dtype}; expected numbers")
    if X.ndim != 2:
        raise DataError(f"{where}: X has {X.ndim} dimensions; expected 2")
    return X


class ArraySource(Shardable):
    """Rows of an in-memory (or memory-mapped) matrix and label vector."""

    def __init__(self, X, y=None, where="array"):
        self.path = where
        if hasattr(X, "to_numpy") and hasattr(X, "columns"):  # pandas DataFrame
            X = X.to_numpy()
        self.X = _check_matrix(X, where)
        self.y = None if y is None else np.asarray(y)
        if self.y is not None and self.y.shape[0] != self.X.shape[0]:
            raise DataError(f"{where}: X has {self.X.shape[0]} rows but y has {self.y.shape[0]}")
        self.n_rows, self.n_features = self.X.shape
        self.label = None if y is None else "y"
        self.skipped: dict = {}

    def labels(self):
        return self.y

    def blocks(self, rows=None, block_rows=BLOCK_ROWS):
        n = self.n_rows if rows is None else len(rows)
        for lo in range(0, n, block_rows):
            idx = slice(lo, min(lo + block_rows, n)) if rows is None else rows[lo : lo + block_rows]
            yield self._take(idx)

    def _take(self, idx):
        X = self.X[idx]
        if not sp.issparse(X):
            X = np.asarray(X)
            if X.dtype.kind != "f":
                X = X.astype(np.float64)
            bad = ~np.isfinite(X)
            if bad.any():
                r, c = np.argwhere(bad)[0]
                base = idx.start if isinstance(idx, slice) else None
                row = (base + r) if base is not None else int(idx[r])
                raise DataError(f"{self.path}: row {row + 1}, column {c + 1}: {X[r, c]} is not finite "
                                "(NaN and Inf are not accepted)")
        elif not np.isfinite(X.data).all():
            raise DataError(f"{self.path}: a stored value is NaN or Inf; expected finite numbers")
        return X, (None if self.y is None else self.y[idx])

    def read(self, rows=None):
        return self._take(slice(None) if rows is None else rows)


def _npz_member_memmap(path, zf: zipfile.ZipFile, name: str):
    """Memory-map an uncompressed ``.npy`` member of a zip; None when it is compressed."""
    info = zf.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        start = info.header_offset + 30 + name_len + extra_len
        f.seek(start)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if dtype.hasobject:
            raise DataError(f"{path}: member {name} holds Python objects; expected numbers (no pickle is loaded)")
        offset = f.tell()
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def open_npz(path):
    """``.npz`` with ``y`` and ``X`` (or CSR ``data``, ``indices``, ``indptr``, ``shape``)."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    with zf:
        names = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
        if "y" not in names:
            raise DataError(f"{path}: no array 'y'; a data .npz holds y and X (or data, indices, indptr, shape)")

        def get(k):
            m = _npz_member_memmap(path, zf, k + ".npy")
            if m is not None:
                return m
            with np.load(path, allow_pickle=False) as z:
                return z[k]

        try:
            y = np.asarray(get("y"))
            if "X" in names:
                X = get("X")
            elif {"data", "indices", "indptr", "shape"} <= names:
                X = sp.csr_matrix((np.asarray(get("data")), np.asarray(get("indices")), np.asarray(get("indptr"))),
                                  shape=tuple(np.asarray(get("shape"))))
            else:
                raise DataError(f"{path}: holds {sorted(names)}; expected X, or data, indices, indptr and shape")
        except ValueError as e:
            raise DataError(f"{path}: {e}") from None
    return ArraySource(X, y, where=path)


def open_npy(path, y):
    try:
        X = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{path}: {e}") from None
    if y is None:
        raise DataError(f"{path}: a .npy file holds only X; pass the labels (y=...) or use .npz with X and y")
    return ArraySource(X, y, where=path)
