"""Hogwild!: several processes on one machine update one parameter vector in
shared memory without locks (Niu, Recht, Re & Wright, "Hogwild!: A Lock-Free
Approach to Parallelizing Stochastic Gradient Descent", NIPS 2011). With sparse
data each step touches few coordinates, so overwrites are rare and harmless.

The vector (and the optimizer's per-coordinate state, e.g. AdaGrad's
accumulators) lives in ``/dev/shm`` files every worker maps; a step reads the
touched coordinates, computes the batch gradient and writes the update back in
place, through the same per-coordinate optimizer code as a parameter-server
shard, minus the lock. The training loop is the parameter server's with a
local client and nobody waiting.

>>> import numpy as np, tempfile
>>> folder = tempfile.mkdtemp()
>>> a = shared_shard(folder, 4, "sgd", 0.5, create=True)
>>> b = shared_shard(folder, 4, "sgd", 0.5, create=False)   # another process would do this
>>> c = LocalClient(a); c.wait(c.push(np.array([1, 1, 3]), np.array([1.0, 1.0, 2.0])))
>>> b.values.tolist()
[0.0, -1.0, 0.0, -1.0]
"""
from __future__ import annotations

import os

import numpy as np

from shardlearn.core.tree import leaves, unflatten
from shardlearn.ps.server import Shard, sum_by_key


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def shared_shard(folder: str, size: int, rule: str, learning_rate: float, l1: float = 0.0, l2: float = 0.0,
                 create: bool = False, free=(), scale=None, schedule: str = "constant") -> Shard:
    """A shard whose values and per-coordinate state are memory-mapped files in ``folder``,
    created (with the optimizer's initial values) by one process and opened by the others.
    ``free``: unpenalised keys (the intercept); ``scale``: the preconditioner every process
    computed alike (``Shard.use_scale``)."""
    shard = Shard(size, rule, learning_rate, l1, l2, free=free, schedule=schedule)
    if scale is not None:
        shard.use_scale(scale)
    shard.lock = _NoLock()

    def mapped(i, initial):
        path = os.path.join(folder, f"leaf-{i}.npy")
        if create:
            arr = np.lib.format.open_memmap(path, mode="w+", dtype=initial.dtype, shape=initial.shape)
            arr[:] = initial
            arr.flush()
            return arr
        return np.load(path, mmap_mode="r+")

    shard.values = mapped(0, shard.values)
    if shard.state is not None:
        parts = [mapped(i + 1, a) if a.ndim and a.shape[0] == size else a for i, a in enumerate(leaves(shard.state))]
        shard.state = unflatten(shard.state, parts)
    return shard


class _Done:
    def __init__(self, value=None):
        self.value = value


class LocalClient:
    """The client interface (``push``/``pull``/``wait``, clock calls) over a shared shard, lock-free."""

    def __init__(self, shard: Shard):
        self.shard = shard
        self.keys_pushed = self.keys_pulled = 0

    def push(self, keys, values, at=None):
        """``at``: as ``ps.client.Client.push``'s (a kernel shard's rows brought up to it first)."""
        uniq, sums = sum_by_key(keys, values)
        if at is not None:
            self.shard.catch_up(uniq, at)
        self.shard.push(uniq, sums)
        self.keys_pushed += uniq.size
        return _Done()

    def pull(self, keys):
        self.keys_pulled += len(keys)
        return _Done(self.shard.pull(np.asarray(keys, dtype=np.int64)))

    @staticmethod
    def wait(handle):
        return handle.value

    def tick(self, wait=True):
        return None

    def wait_min(self, target):  # nobody waits in Hogwild
        return target
