"""Training on the active columns of sparse rows: the columns that hold a value on some
worker, agreed by one bitwise-or allreduce of a bit per column, renumbered onto
``0 .. k-1`` for the fit, and the model scattered back to the full width after.

A column that is zero in every row has a zero data gradient, so under an L2 or
elastic-net penalty its optimal weight is exactly 0, and a per-example learner never
touches it: training on the active columns only gives the same model with far smaller
vectors (D2: 818,292 of 4,194,304 hashed columns). The allreduce strategies have always
done it (``runtime.loop``); the per-example parameter-server strategies and ``hogwild`` do
it where the width is at most ``WIDEST``, the width their kernel already keeps a scratch of
one int32 per column for (``strategies.ps_online``). A wider hashed space (2^28 keys) is
left as it is, and so are the mini-batch parameter-server fits, the ones for models larger
than a worker: a worker's memory never grows with the key space.

>>> import numpy as np, scipy.sparse as sp
>>> X = sp.csr_matrix(np.array([[0.0, 2.0, 0.0, 1.0], [0.0, 3.0, 0.0, 0.0]]))
>>> active = columns(X)
>>> active.tolist(), compact(X, active).toarray().tolist()
([1, 3], [[2.0, 1.0], [3.0, 0.0]])
>>> mine = X.copy(); np.shares_memory(compact(mine, active, owned=True).indices, mine.indices)  # in place
True
>>> scatter(np.array([0.5, -1.0]), active, 4).tolist()
[0.0, 0.5, 0.0, -1.0]
>>> digest(active) == digest(np.array([1, 3])), digest(active) == digest(np.array([1, 2]))
(True, False)
"""
from __future__ import annotations

import zlib

import numpy as np
import scipy.sparse as sp

from shardlearn.kernels import columns as compiled

WIDEST = 1 << 23  # as strategies.ps_online.SCRATCH_WIDTH: 8M columns, a 1 MB mask to agree on


def columns(X, comm=None):
    """Columns of a sparse ``X`` that hold a value on some worker (None: dense, or all active)."""
    if not sp.issparse(X):
        return None
    mask = compiled.present(X.indices, X.shape[1]) if X.format == "csr" else np.bincount(X.tocoo().col,
                                                                                          minlength=X.shape[1]) > 0
    if comm is not None and comm.size > 1:  # one bit a column, or-ed (D2: 512 KB, not 16 MB of float32)
        mask = np.unpackbits(comm.allreduce(np.packbits(mask), op="bor"), count=X.shape[1])
    active = np.flatnonzero(mask)
    return None if active.size == X.shape[1] else active


def narrow(X, comm=None, owned: bool = False):
    """``(X on its active columns, active)``, or ``(X, None)`` where it is dense, all active or
    wider than ``WIDEST`` (every worker decides alike: the width is the data's, not the shard's).
    ``owned``: as in ``compact``."""
    if not sp.issparse(X) or X.shape[1] > WIDEST:
        return X, None
    active = columns(X, comm)
    return (X, None) if active is None else (compact(X, active, owned), active)


def compact(X, active, owned: bool = False):
    """``X[:, active]`` for sorted ``active`` that hold every stored value, sharing ``X``'s values.
    ``owned``: ``X`` is the fit's own copy (a worker's rows copied out of the driver's spill),
    whose column indices are renumbered in place, so ``X`` must not be used after: no second
    array of the stored values' size (D2's 1M rows a worker: 104 MB less, written and faulted in
    once, not twice)."""
    X = X.tocsr()
    in_place = owned and X.indices.flags.writeable and (active.size < 2**31 or X.indices.dtype == np.int64)
    indices = compiled.renumber(X.indices, active, X.shape[1], out=X.indices if in_place else None)
    indptr = X.indptr.astype(indices.dtype, copy=False) if X.nnz < 2**31 else X.indptr
    return sp.csr_matrix((X.data, indices, indptr), shape=(X.shape[0], active.size))


def scatter(w: np.ndarray, active, width: int) -> np.ndarray:
    """Rows ``w`` of the active columns back at their places among ``width`` (zeros elsewhere);
    ``w`` as it is where ``active`` is None."""
    if active is None:
        return w
    w = np.asarray(w)
    full = np.zeros((width,) + w.shape[1:], dtype=w.dtype if w.dtype.kind == "f" else np.float64)
    full[active] = w
    return full


def digest(active) -> str | None:
    """A checksum of the active columns, for a checkpoint's fingerprint: a run resumed on data
    with other active columns would read every weight at another column's place."""
    if active is None:
        return None
    return f"{zlib.crc32(np.ascontiguousarray(active, dtype=np.int64).tobytes()):08x}:{np.size(active)}"
