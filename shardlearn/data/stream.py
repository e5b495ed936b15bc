"""A worker's rows streamed again at every pass, never whole in memory: out-of-core
training. Full-batch strategies sum their loss and gradient over the blocks of one
pass; stochastic ones take their batches from the blocks in order (rows permuted
within each block when shuffling, the usual out-of-core shuffle, as ``batch.batches``).

A ``Stream`` has what the training loop asks of a matrix (``shape``) and, instead of
random access, ``blocks()``: ``(X, y)`` pairs of at most a few MB of text each.

>>> import numpy as np
>>> blocks = [(np.ones((3, 2)), np.zeros(3)), (np.ones((2, 2)), np.ones(2))]
>>> s = Stream(lambda: iter(blocks), n_rows=5, n_features=2)
>>> s.shape, [y.tolist() for _, y in s.batches(4)]
((5, 2), [[0.0, 0.0, 0.0, 1.0], [1.0]])
>>> survey(lambda: iter(blocks))["labels"]
[0.0, 1.0]
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from shardlearn.data import libsvm
from shardlearn.data.batch import permuted, rebatch
from shardlearn.data.labels import numeric_labels

CHUNK_BYTES = 8 << 20  # text per block: a block's arrays are a few times this, whatever the shard's size


class Stream:
    """Rows that ``blocks()`` yields again at every call, with labels already coded."""

    ndim = 2

    def __init__(self, blocks, n_rows: int, n_features: int, bytes_per_pass: int = 0, moments=None):
        self._blocks, self.bytes_per_pass = blocks, int(bytes_per_pass)
        self.moments = moments  # the survey's (column sums of x and x^2, rows) of dense blocks, or None
        self.shape = (int(n_rows), int(n_features))
        self.passes = 0

    def blocks(self):
        self.passes += 1
        yield from self._blocks()

    def batches(self, batch_size: int, order_seed=None):
        """``(X, y)`` batches of ``batch_size`` rows in stream order; with ``order_seed`` (a seed
        sequence) the rows of each block are permuted first."""
        blocks = self.blocks()
        if order_seed is not None:
            blocks = permuted(blocks, np.random.default_rng(order_seed))
        return rebatch(blocks, batch_size)


def survey(blocks) -> dict:
    """One pass over raw blocks: rows, the smallest and largest column index in use, labels,
    and where every block is dense the column sums of x and x^2 (``moments``, for the
    per-example kernel's centre, ``strategies.precond.centre``; None otherwise)."""
    n, lo, hi, labels, s1, s2, dense = 0, None, -1, set(), 0.0, 0.0, True
    for X, y in blocks():
        n += X.shape[0]
        if sp.issparse(X):
            dense = False
            if X.nnz:
                lo = int(X.indices.min()) if lo is None else min(lo, int(X.indices.min()))
                hi = max(hi, int(X.indices.max()))
        elif dense and X.shape[0]:
            Xf = np.asarray(X, dtype=np.float64)
            s1, s2 = s1 + Xf.sum(axis=0), s2 + np.einsum("ij,ij->j", Xf, Xf)
        labels.update(np.unique(y).tolist())
    moments = (s1, s2, float(n)) if dense and n and not np.isscalar(s1) else None
    return {"rows": n, "min_index": lo, "max_index": hi, "labels": sorted(labels), "moments": moments}


def libsvm_blocks(path, start, end, *, zero_based=True, n_features=None, on_bad_row="error", skipped=None,
                  chunk_bytes=CHUNK_BYTES):
    """A function yielding the ``(X, y)`` blocks of a LIBSVM byte range, parsed anew each call
    (``n_features=None`` and ``zero_based=True``: raw indices, for ``survey``)."""

    def blocks():
        for a, b in libsvm.chunks(path, start, end, chunk_bytes):
            X, y, bad = libsvm.parse_range(path, a, b, zero_based=zero_based, n_features=n_features,
                                           on_bad_row=on_bad_row)
            if skipped is not None:
                for k, v in bad.items():
                    skipped[k] = skipped.get(k, 0) + v
            yield X, numeric_labels(y)

    return blocks
