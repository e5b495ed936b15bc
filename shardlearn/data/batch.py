"""Batchers: full batch (GD), 1 (SGD) or b rows (mini-batch), optionally shuffled
per epoch with a seed derived from ``(seed, epoch)``. They walk a shard's blocks,
so a shard bigger than memory streams. Shuffling is exact for in-memory and
memory-mapped arrays (a permutation of all the shard's rows); for streamed files
(LIBSVM, CSV, Parquet) the rows within each block are permuted, the usual
out-of-core shuffle.

>>> import numpy as np
>>> from shardlearn.data.arrays import ArraySource
>>> shard = ArraySource(np.arange(10.0)[:, None], np.arange(10)).shard(1, 0)
>>> [y.tolist() for _, y in batches(shard, 4)]
[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
>>> sorted(np.concatenate([y for _, y in batches(shard, 3, shuffle=True, seed=1, epoch=2)]).tolist()) == list(range(10))
True
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _concat(parts):
    Xs = [p[0] for p in parts]
    X = sp.vstack(Xs, format="csr") if sp.issparse(Xs[0]) else np.concatenate(Xs)
    return X, np.concatenate([p[1] for p in parts])


def batches(shard, batch_size: int | None = None, *, shuffle: bool = False, seed: int = 0, epoch: int = 0):
    """Yield ``(X, y)`` batches of ``batch_size`` rows (``None``: the whole shard as one batch)."""
    blocks = shard.blocks()
    if shuffle:
        rng = np.random.default_rng([int(seed), int(epoch), 0xBA7C])
        source = shard.source
        if hasattr(source, "X") and shard.byte_range is None:  # random access: exact shuffle
            rows = np.arange(source.n_rows) if shard.rows is None else shard.rows
            blocks = source.blocks(rows[rng.permutation(len(rows))])
        else:
            blocks = permuted(blocks, rng)
    if batch_size is None:
        parts = list(blocks)
        if parts:
            yield _concat(parts)
        return
    yield from rebatch(blocks, batch_size)


def permuted(blocks, rng):
    """The rows of each ``(X, y)`` block in a random order (the out-of-core shuffle)."""
    for X, y in blocks:
        p = rng.permutation(X.shape[0])
        yield X[p], y[p]


def rebatch(blocks, batch_size: int):
    """``(X, y)`` blocks of any sizes cut and joined into batches of ``batch_size`` rows."""
    pending, have = [], 0
    for X, y in blocks:
        lo = 0
        n = X.shape[0]
        while lo < n:
            take = min(batch_size - have, n - lo)
            pending.append((X[lo : lo + take], y[lo : lo + take]))
            have += take
            lo += take
            if have == batch_size:
                yield _concat(pending) if len(pending) > 1 else pending[0]
                pending, have = [], 0
    if pending:
        yield _concat(pending) if len(pending) > 1 else pending[0]
