"""Handing in-memory arrays to worker processes without pickling them: the driver
writes them once as ``.npy`` files (CSR as an uncompressed ``.npz``) under
``/dev/shm`` where it exists, and each worker memory-maps them and copies out only
its shard's rows.

>>> import numpy as np
>>> with Spill(np.arange(6.0).reshape(3, 2), np.array([0, 1, 0])) as spec:
...     X, y, sw = open_spec(spec)
...     (type(X).__name__, y.tolist(), sw)
('memmap', [0, 1, 0], None)
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import scipy.sparse as sp


class Spill:
    def __init__(self, X, y, sample_weight=None):
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        self.dir = tempfile.mkdtemp(prefix="shardlearn-", dir=base)
        self.spec = {"dir": self.dir, "sparse": sp.issparse(X), "weights": sample_weight is not None}
        if sp.issparse(X):
            X = X.tocsr()
            for name in ("data", "indices", "indptr"):
                np.save(os.path.join(self.dir, f"X.{name}.npy"), getattr(X, name))
            self.spec["shape"] = [int(v) for v in X.shape]
        else:
            np.save(os.path.join(self.dir, "X.npy"), np.ascontiguousarray(X))
        np.save(os.path.join(self.dir, "y.npy"), np.asarray(y))
        if sample_weight is not None:
            np.save(os.path.join(self.dir, "w.npy"), np.asarray(sample_weight, dtype=np.float64))

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
    return np.load(os.path.join(d, "X.npy"), mmap_mode="r"), y, sw
