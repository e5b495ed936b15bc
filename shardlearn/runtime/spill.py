"""Handing in-memory arrays to worker processes without pickling them: the driver
writes them once as ``.npy`` files (CSR as its three arrays) under ``/dev/shm`` where
it exists (``launch.scratch_dir``), and each worker memory-maps them and copies out
only its shard's rows.

>>> import numpy as np
>>> with Spill(np.arange(6.0).reshape(3, 2), np.array([0, 1, 0])) as spec:
...     X, y, sw = open_spec(spec)
...     (type(X).__name__, y.tolist(), sw)
('memmap', [0, 1, 0], None)

An array that is already a memory-mapped ``.npy`` file is not copied: workers map
the same file.

>>> import tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "X.npy"); np.save(path, np.ones((4, 2)))
>>> with Spill(np.load(path, mmap_mode="r"), np.zeros(4)) as spec:
...     spec["X_path"] == path
True
"""
from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from shardlearn.runtime import launch


class Spill:
    def __init__(self, X, y, sample_weight=None, extra=None):
        self.dir = tempfile.mkdtemp(prefix="shardlearn-", dir=launch.scratch_dir())
        self.spec = {"dir": self.dir, "sparse": sp.issparse(X), "weights": sample_weight is not None}
        files = {}
        if sp.issparse(X):
            X = X.tocsr()
            files.update({f"X.{name}": getattr(X, name) for name in ("data", "indices", "indptr")})
            self.spec["shape"] = [int(v) for v in X.shape]
        elif _npy_file(X) is not None:  # already a memory-mapped .npy file: workers map it directly
            self.spec["X_path"] = _npy_file(X)
        else:
            files["X"] = np.ascontiguousarray(X)
        files["y"] = np.asarray(y)
        if sample_weight is not None:
            files["w"] = np.asarray(sample_weight, dtype=np.float64)
        files.update({f"extra.{name}": np.asarray(values) for name, values in (extra or {}).items()})  # a task id...
        # one file a thread: writes to one tmpfs file take turns on its inode, to two files they
        # do not (D2's 2M CSR rows: 0.18 -> 0.095 s on 2 cores; one dense file gains nothing;
        # benchmarks/bench_spill.py)
        try:
            with ThreadPoolExecutor(max(1, min(len(files), os.cpu_count() or 1))) as pool:
                list(pool.map(lambda item: np.save(os.path.join(self.dir, item[0] + ".npy"), item[1]), files.items()))
        except BaseException:  # a full /dev/shm, an interrupt: nothing left behind
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def __enter__(self):
        return self.spec

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


def open_spec(spec):
    """``(X, y, sample_weight)`` memory-mapped from a spill directory."""
    d = spec["dir"]
    y = np.load(os.path.join(d, "y.npy"), mmap_mode="r")
    sw = np.load(os.path.join(d, "w.npy"), mmap_mode="r") if spec["weights"] else None
    if spec["sparse"]:
        parts = [np.load(os.path.join(d, f"X.{name}.npy"), mmap_mode="r") for name in ("data", "indices", "indptr")]
        return sp.csr_matrix(tuple(parts), shape=tuple(spec["shape"])), y, sw
    return np.load(spec.get("X_path") or os.path.join(d, "X.npy"), mmap_mode="r"), y, sw


def open_extra(spec, name: str) -> np.ndarray:
    """The per-row column ``name`` given to ``Spill(..., extra={name: values})``, memory-mapped."""
    return np.load(os.path.join(spec["dir"], f"extra.{name}.npy"), mmap_mode="r")


def _npy_file(X):
    """The ``.npy`` file that ``X`` maps whole (``np.load(..., mmap_mode="r")``, or a view of it
    such as scikit-learn's validation returns), else None."""
    m = X
    while m is not None and not isinstance(m, np.memmap):
        m = m.base
    if m is None or not getattr(m, "filename", None) or not str(m.filename).endswith(".npy"):
        return None
    if not X.flags.c_contiguous or X.__array_interface__["data"][0] != m.__array_interface__["data"][0]:
        return None
    try:
        whole = np.load(m.filename, mmap_mode="r")
    except (OSError, ValueError):
        return None
    same = whole.shape == X.shape and whole.dtype == X.dtype and whole.offset == m.offset
    return str(m.filename) if same else None
