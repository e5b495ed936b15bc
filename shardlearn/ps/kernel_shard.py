"""A parameter-server shard holding the per-example kernel's state (``kernels.sgd``):
for each of its keys the weight, the sum of squared gradients, the scale (FTRL: ``z``)
and the penalty clock, side by side, so the per-coordinate state lives where the
coordinate lives. Workers pull these rows for the keys of a batch, run the kernel over
the batch, and push the *change* (``kernels.delta``); the shard merges it (differences
and the clocks' advances add, scales take the largest; a weight change learned at a smaller scale than
the key's moves it that much less). One key of the model's key space, after the
intercept, holds the kernel's scalars ``[t, N]`` (weight seen, normalizer sum) in its
weight and sum slots, so they travel and merge with the same pulls and pushes.

>>> import numpy as np
>>> s = KernelShard(3, rule="normalized", learning_rate=0.5)
>>> s.push(np.array([1]), np.array([[0.5, 1.0, 2.0, 7.0]])); s.push(np.array([1]), np.array([[0.5, 1.0, 1.0, 3.0]]))
>>> s.pull(np.array([1])).tolist()   # the second change, learned at scale 1, counts half at scale 2
[[0.75, 2.0, 2.0, 10.0]]
"""
from __future__ import annotations

import fcntl
import threading

import numpy as np

from shardlearn.core.errors import ConfigError
from shardlearn.kernels import delta, sgd as kernel
from shardlearn.ps.server import Shard


class KernelShard(Shard):
    """``size`` keys of kernel state under ``rule`` (a ``kernels.sgd`` rule); ``free``: local
    indices never penalised (the intercept's key, the scalars' key). Pushes are changes
    (``(k, 4)`` rows for distinct keys); with ``clock`` (bsp) a clock's pushes are held and
    merged together once all ``expect`` arrived, as ``Shard`` does. ``path``: the state is the
    ``.npy`` file there, mapped (``create``: made, zeros), and the lock holds other processes
    mapping it too (``SharedLock``): the workers of one machine merge into it in place."""

    def __init__(self, size: int, rule: str = "normalized", learning_rate: float = 0.5, l1: float = 0.0,
                 l2: float = 0.0, dtype="float64", free=(), power_t: float = 0.0, anneal: dict | None = None,
                 path: str | None = None, create: bool = True):
        if rule not in kernel.RULES:
            raise ConfigError(f"per-example server rule {rule!r}: expected one of {', '.join(kernel.RULES)}")
        self.size, self.rule, self.learning_rate, self.power_t = int(size), rule, float(learning_rate), float(power_t)
        self.l1, self.l2 = float(l1), float(l2)
        self.anneal = dict(anneal or {})  # the linear schedule's end and span: the penalty's catch-ups follow it
        self.free = np.asarray(free, dtype=np.int64)
        if path is None:
            self.ws, self.lock = np.zeros((self.size, 4), dtype=np.dtype(dtype)), threading.Lock()
        else:  # a fresh file reads as zeros, its pages allocated where a key is first written
            self.ws = np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=(self.size, 4)) \
                if create else np.load(path, mmap_mode="r+")
            self.lock = SharedLock(path + ".lock")
        self.scale = self.stats = None
        self.pushes = 0
        self.held: dict = {}

    def _apply(self, idx, rows) -> None:
        delta.merge(self.ws, idx, rows, self.rule)
        if idx.size:  # a change decoded from a quantizer may undershoot: an adaptive sum stays >= 0
            self.ws[idx, kernel.G] = np.maximum(self.ws[idx, kernel.G], 0.0)

    def push(self, idx: np.ndarray, rows: np.ndarray, clock: int | None = None, expect: int = 1, at=None) -> None:
        """Merge a change (``at``: learned from rows brought up to date at these scalars, which
        the keys are brought to first). With ``clock`` (bsp) the change *and its catch-up* are
        held until the clock's ``expect`` pushes arrived: a pull between two clocks then sees no
        row moved by the next clock's pushes. (Caught up on arrival, a row a fast worker's push
        had already decayed reached a slower worker's pull caught up by the shard rather than
        by the worker: the same value in float64, but rounded to float32 at a different point
        when pulls are packed, and two int8 runs of bsp over a server ended 1e-4 apart.)"""
        super().push(idx, (rows, at), clock, expect)  # held as Shard holds pushes, merged below

    def _arrived(self, idx, change) -> None:
        rows, at = change
        if at is not None:
            self._catch_up(idx, at)
        self._apply(idx, rows)

    def _apply_held(self, held) -> None:
        """A bsp clock's pushes merged in an order of their own (by key, then values), not their
        arrival's: the sums of a key's differences round the same way in every run, so two
        runs of per-example bsp over a server end bit for bit equal (they differed in the last
        bits before). Each push's keys are caught up first, the pushes by their scalars."""
        for i, (_, at) in sorted((h for h in held if h[1][1] is not None), key=lambda h: tuple(np.ravel(h[1][1]))):
            self._catch_up(i, at)
        idx = np.concatenate([i for i, _ in held])
        if idx.size:
            rows = np.concatenate([r.reshape(-1, 4) for _, (r, _) in held])
            order = np.lexsort((rows[:, 3], rows[:, 2], rows[:, 1], rows[:, 0], idx))
            self._apply(idx[order], rows[order])

    def catch_up(self, idx: np.ndarray, at) -> None:
        """Keys ``idx`` take the penalty up to scalars ``at = [t, N]`` (a clock never moves back):
        where a change learned from rows brought up to date at ``at`` starts, so the decay of
        the rows before it is taken once however many workers' changes touch a key."""
        with self.lock:
            self._catch_up(idx, at)

    def _catch_up(self, idx: np.ndarray, at) -> None:
        delta.start({"ws": self.ws, "scalars": np.asarray(at, dtype=np.float64)}, idx,
                    dict(rule=self.rule, lr=self.learning_rate, power_t=self.power_t, l1=self.l1, l2=self.l2,
                         free=self.free, **self.anneal))

    def pull(self, idx: np.ndarray) -> np.ndarray:
        with self.lock:
            return delta.rows_at(self.ws, idx)  # float64 whatever the shard keeps; far-apart rows asked for ahead

    def pull_packed(self, idx: np.ndarray) -> np.ndarray:
        """``pull`` as the bytes of ``packed`` (the free keys' rows whole)."""
        rows = self.pull(idx)
        return packed(rows, np.isin(idx, self.free))

    def finalize(self, t: float, nsum: float) -> None:
        """Every key takes the penalty up to weight seen ``t`` (FTRL: its weight from ``z``)."""
        with self.lock:
            kernel.finalize({"ws": self.ws, "scalars": np.array([t, nsum])}, rule=self.rule, lr=self.learning_rate,
                            power_t=self.power_t, l1=self.l1, l2=self.l2, free=self.free, **self.anneal)

    def weights(self) -> np.ndarray:
        return np.ascontiguousarray(self.ws[:, kernel.W])

    def arrays(self) -> dict:
        """The rows of the keys ever touched, and their local indices (a hashed model's shard is
        mostly untouched: a checkpoint costs what was learned, not the key space)."""
        with self.lock:
            rows = np.flatnonzero(self.ws.any(axis=1))
            return {"rows": rows, "state_rows": self.ws[rows]}

    def restore(self, arrays: dict) -> None:
        with self.lock:
            self.ws[:] = 0.0
            self.ws[arrays["rows"]] = arrays["state_rows"]


class SharedLock:
    """A lock over this process's threads and every process holding a lock on the same file:
    a thread lock, then ``fcntl.flock`` on the file as this process opened it (flock excludes
    open file descriptions, one a process here; the kernel drops it when its holder dies).

    >>> import os, tempfile
    >>> lock = SharedLock(os.path.join(tempfile.mkdtemp(), "shard.lock"))
    >>> with lock:
    ...     print("held")
    held
    """

    def __init__(self, path: str):
        self.thread, self.file = threading.Lock(), open(path, "ab")

    def __enter__(self):
        self.thread.acquire()
        fcntl.flock(self.file.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.file.fileno(), fcntl.LOCK_UN)
        self.thread.release()
        return False


def packed(rows: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """Kernel state rows as a pull under a codec sends them (uint8): the weight, the adaptive
    sum and the scale as float32, the clock as float64 (the lazy penalty compares clocks
    exactly), and the rows marked ``whole`` (the scalars' key: weight seen, normalizer sum)
    entirely as float64; 20 bytes a key instead of 32. The pulled values only start a
    worker's batch, whose change is pushed as a difference, so the shard's own float64 state
    loses nothing. ``unpacked`` reads it back.

    >>> rows = np.array([[0.1, 2.0, 3.0, 5.0], [1e9 + 1, 16777217.0, 0.0, 0.0]])
    >>> got = unpacked(packed(rows, np.array([False, True])), 2)
    >>> got[1].tolist() == rows[1].tolist(), float(got[0, kernel.L]), float(got[0, 0]) == 0.1, round(float(got[0, 0]), 7)
    (True, 5.0, False, 0.1)
    """
    pos = np.flatnonzero(whole)
    k = rows.shape[0]
    low = np.empty((k, 3), dtype=np.float32)
    low[:, 0], low[:, 1], low[:, 2] = rows[:, kernel.W], rows[:, kernel.G], rows[:, kernel.S]
    return np.concatenate([np.array([pos.size], dtype=np.int64).view(np.uint8), pos.astype(np.int64).view(np.uint8),
                           np.ascontiguousarray(rows[pos], dtype=np.float64).view(np.uint8).ravel(),
                           np.ascontiguousarray(rows[:, kernel.L], dtype=np.float64).view(np.uint8),
                           low.view(np.uint8).ravel()])


def unpacked(buf: np.ndarray, k: int) -> np.ndarray:
    """The ``(k, 4)`` float64 rows ``packed`` sent."""
    m = int(buf[:8].view(np.int64)[0])
    at = 8 + 8 * m
    pos = buf[8:at].view(np.int64)
    whole = buf[at : at + 32 * m].view(np.float64).reshape(m, 4)
    at += 32 * m
    out = np.empty((k, 4))
    out[:, kernel.L] = buf[at : at + 8 * k].view(np.float64)
    low = buf[at + 8 * k : at + 20 * k].view(np.float32).reshape(k, 3)
    out[:, kernel.W], out[:, kernel.G], out[:, kernel.S] = low[:, 0], low[:, 1], low[:, 2]
    out[pos] = whole
    return out


def assemble(parts: list, slicer, n_keys: int) -> np.ndarray:
    """The whole ``(n_keys, 4)`` kernel state from every shard's ``arrays()`` (in shard order).

    >>> from shardlearn.ps.slicer import RangeSlicer
    >>> sl = RangeSlicer(3, 2)
    >>> a, b = KernelShard(sl.size(0)), KernelShard(sl.size(1))
    >>> b.push(sl.route(np.array([2]))[1], np.array([[0.5, 1.0, 1.0, 0.0]]))  # key 2 lives on shard 1
    >>> assemble([a.arrays(), b.arrays()], sl, 3)[:, 0].tolist()
    [0.0, 0.0, 0.5]
    """
    full = np.zeros((n_keys, 4))
    for s, part in enumerate(parts):
        keys = slicer.keys_of(s)
        by_local = np.empty_like(keys)
        by_local[slicer.route(keys)[1]] = keys
        full[by_local[part["rows"]]] = part["state_rows"]
    return full
