"""Shards: the rows one worker owns, read whole or streamed in blocks.

>>> import numpy as np
>>> from shardlearn.data.arrays import ArraySource
>>> s = ArraySource(np.zeros((7, 1)), np.zeros(7))
>>> [s.shard(2, r, "random", seed=3).n_rows for r in range(2)]
[4, 3]
"""
from __future__ import annotations

from shardlearn.core.errors import ConfigError
from shardlearn.data import libsvm, partition
from shardlearn.data.arrays_stack import stack


class Shard:
    """The rows one worker owns: a sorted index array, or a byte range of a LIBSVM file."""

    def __init__(self, source, rows=None, byte_range=None):
        self.source, self.rows, self.byte_range = source, rows, byte_range
        if byte_range is not None:
            self._n = None
        else:
            self._n = source.n_rows if rows is None else len(rows)

    @property
    def n_rows(self) -> int:
        if self._n is None:
            self._n = sum(X.shape[0] for X, _ in self.blocks())
        return self._n

    @property
    def n_features(self) -> int:
        return self.source.n_features

    def blocks(self):
        """Stream ``(X, y)`` blocks of this shard (out of core)."""
        if self.byte_range is not None:
            yield from self.source.byte_blocks(*self.byte_range)
        else:
            yield from self.source.blocks(self.rows)

    def read(self):
        """The whole shard in memory."""
        if self.byte_range is not None:
            return stack(list(self.blocks()), self.n_features)
        return self.source.read(self.rows)


def shard(source, world: int, rank: int, partition_: str = "contiguous", seed: int = 0) -> Shard:
    if partition_ == "contiguous" and hasattr(source, "byte_blocks"):
        partition.check(world, rank)
        return Shard(source, byte_range=libsvm.split(source.path, world)[rank])
    labels = source.labels() if partition_ == "stratified" else None
    keys = source.keys() if partition_ == "hash" else None
    if partition_ == "hash" and keys is None:
        raise ConfigError("partition='hash' needs a key column (key=...)")
    rows = partition.rows_for(partition_, world, rank, n=source.n_rows, seed=seed, labels=labels, keys=keys)
    return Shard(source, rows=rows)


class Shardable:
    """What every source has: ``shard(world, rank, partition, seed)``."""

    def keys(self):
        return None

    def shard(self, world: int, rank: int, partition: str = "contiguous", seed: int = 0) -> "Shard":
        return shard(self, world, rank, partition, seed)
