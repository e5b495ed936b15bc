"""Partitioners: which rows each of ``world`` workers owns. Every partitioner
gives disjoint shards whose union is every row exactly once.

- ``contiguous``: rows ``[r n / k, (r + 1) n / k)`` (byte ranges and row groups
  are handled by the sources);
- ``random``: a seeded permutation dealt round-robin (sizes differ by at most one);
- ``stratified``: each class shuffled (seeded) and dealt round-robin, continuing
  where the previous class stopped, so every shard has the class proportions of
  the whole to within one row per class and sizes within one row;
- ``hash``: rows with equal keys land on one worker (murmurhash3 of the key, as
  scikit-learn's ``FeatureHasher``: stable across processes and machines).

>>> contiguous(10, 3, 0).tolist(), contiguous(10, 3, 2).tolist()
([0, 1, 2], [6, 7, 8, 9])
>>> sorted(random(10, 3, 0, seed=1).tolist() + random(10, 3, 1, seed=1).tolist() + random(10, 3, 2, seed=1).tolist())
[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
>>> stratified([0, 0, 0, 0, 1, 1], 2, 0, seed=0).size
3
>>> keys = ["a", "b", "a", "c"]
>>> a, b = hash_keys(keys, 2, 0), hash_keys(keys, 2, 1)
>>> sorted(a.tolist() + b.tolist()), (0 in a) == (2 in a)
([0, 1, 2, 3], True)
"""
from __future__ import annotations

import numpy as np

from shardlearn.core.errors import ConfigError

PARTITIONERS = ("contiguous", "random", "stratified", "hash")


def check(world: int, rank: int) -> None:
    """A world size of at least 1 and a rank inside it, or a ConfigError saying which is wrong."""
    if not (isinstance(world, (int, np.integer)) and world >= 1):
        raise ConfigError(f"world size must be a positive integer, got {world!r}")
    if not 0 <= rank < world:
        raise ConfigError(f"rank {rank!r} is outside 0..{world - 1}")


def bounds(n: int, world: int, rank: int) -> tuple[int, int]:
    """``[start, stop)`` of a contiguous shard."""
    check(world, rank)
    return rank * n // world, (rank + 1) * n // world


def contiguous(n: int, world: int, rank: int) -> np.ndarray:
    lo, hi = bounds(n, world, rank)
    return np.arange(lo, hi)


def random(n: int, world: int, rank: int, seed: int = 0) -> np.ndarray:
    check(world, rank)
    perm = np.random.default_rng([int(seed), 0x5EED]).permutation(n)
    mine = np.zeros(n, dtype=bool)  # marking and listing the rows is O(n); sorting them took 15x longer
    mine[perm[rank::world]] = True
    return np.flatnonzero(mine)


def stratified(labels, world: int, rank: int, seed: int = 0) -> np.ndarray:
    check(world, rank)
    labels = np.asarray(labels)
    _, codes = np.unique(labels, return_inverse=True)
    rng = np.random.default_rng([int(seed), 0x57A7])
    order = np.argsort(codes, kind="stable")  # rows grouped by class
    counts = np.bincount(codes) if codes.size else np.zeros(0, np.int64)
    owner = np.empty(labels.shape[0], dtype=np.int64)
    start, offset = 0, 0
    for c in counts:
        rows = order[start : start + c]
        rows = rows[rng.permutation(c)]
        owner[rows] = (offset + np.arange(c)) % world
        start, offset = start + c, (offset + c) % world
    return np.flatnonzero(owner == rank)


def key_hashes(keys) -> np.ndarray:
    """Stable non-negative 32-bit murmurhash3 of each key's string form (hashed once per distinct key)."""
    from sklearn.utils import murmurhash3_32

    keys = np.asarray(keys)
    uniq, inverse = np.unique(keys.astype(str), return_inverse=True)
    h = np.fromiter((murmurhash3_32(str(u), seed=0, positive=True) for u in uniq), dtype=np.int64, count=len(uniq))
    return h[inverse]


def hash_keys(keys, world: int, rank: int) -> np.ndarray:
    check(world, rank)
    return np.flatnonzero(key_hashes(keys) % world == rank)


def rows_for(partition: str, world: int, rank: int, *, n: int, seed: int = 0, labels=None, keys=None) -> np.ndarray:
    """Dispatch by name; ``labels`` (stratified) and ``keys`` (hash) are the whole column."""
    if partition == "contiguous":
        return contiguous(n, world, rank)
    if partition == "random":
        return random(n, world, rank, seed)
    if partition == "stratified":
        if labels is None:
            raise ConfigError("partition='stratified' needs labels")
        return stratified(labels, world, rank, seed)
    if partition == "hash":
        if keys is None:
            raise ConfigError("partition='hash' needs a key column (key=...)")
        return hash_keys(keys, world, rank)
    raise ConfigError(f"unknown partition {partition!r}; expected one of {', '.join(PARTITIONERS)}")
