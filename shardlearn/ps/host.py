"""What a process hosting parameter-server shards (and the clock table) answers
to: module-level handlers the transport calls by reference. One process may host
several shards; the clock lives with the first shard. A shard whose state is a file
of this machine's shared memory (``create(path=...)``) may also be attached by the
other processes of the machine (``attach``): their calls to it run in their own
process (``Client(near=...)``), on the same state, under a lock every process holds.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from shardlearn.comm import codecs, rows
from shardlearn.comm import rpc as transport
from shardlearn.ps.kernel_shard import KernelShard
from shardlearn.ps.rounds import Rounds
from shardlearn.ps.server import Clock, Shard

HOSTED: dict = {"shards": {}, "attached": {}, "clock": None, "answered": {}}


def reset() -> None:
    HOSTED["shards"].clear()
    HOSTED["attached"] = {}  # shard -> another process's shard, mapped here (``attach``)
    HOSTED["clock"] = None
    HOSTED["answered"] = {}  # (shard, worker) -> the keys last answered in a push_pull (key caching)


def create(shard_id: int, size: int, rule: str, learning_rate: float, l1: float, l2: float, dtype: str,
           free=(), schedule: str = "constant", power_t: float | None = None, anneal: dict | None = None,
           path: str | None = None) -> int:
    """A shard: ``power_t`` given, of the per-example kernel's state (``KernelShard``; ``anneal``:
    the linear schedule's ``end`` and ``span``; ``path``: its state a file there, for ``attach``),
    else of values with a mini-batch optimizer's state (``Shard``)."""
    if power_t is not None:
        HOSTED["shards"][shard_id] = KernelShard(size, rule, learning_rate, l1, l2, dtype, free, power_t, anneal,
                                                 path=path)
    else:
        HOSTED["shards"][shard_id] = Shard(size, rule, learning_rate, l1, l2, dtype, free, schedule)
    return os.getpid()


def attach(shard_id: int, size: int, rule: str, learning_rate: float, l1: float, l2: float, dtype: str,
           free=(), schedule: str = "constant", power_t: float | None = None, anneal: dict | None = None,
           path: str | None = None) -> None:
    """Map the kernel shard another process of this machine made with ``create(path=...)`` (the
    same arguments), so this process's calls to it run here."""
    HOSTED["attached"][shard_id] = KernelShard(size, rule, learning_rate, l1, l2, dtype, free, power_t, anneal,
                                               path=path, create=False)


def _shard(shard_id: int):
    """The shard this process hosts or has attached."""
    return HOSTED["shards"][shard_id] if shard_id in HOSTED["shards"] else HOSTED["attached"][shard_id]


def finalize(shard_id: int, t: float, nsum: float) -> None:
    HOSTED["shards"][shard_id].finalize(t, nsum)


def add_stats(shard_id: int, idx: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> None:
    HOSTED["shards"][shard_id].add_stats(idx, sums, counts)


def precondition(shard_id: int, curvature: float, ridge: float) -> None:
    HOSTED["shards"][shard_id].precondition(curvature, ridge)


def push(shard_id: int, idx: np.ndarray, values: np.ndarray, clock=None, expect: int = 1, at=None) -> None:
    """Apply (bsp: hold) a push; ``at``: kernel changes made from rows brought up to date at
    these scalars, which the shard's rows of ``idx`` are brought to first (``KernelShard.push``)."""
    shard = _shard(shard_id)
    if at is None:
        shard.push(idx, values, clock, expect)
    else:
        shard.push(idx, values, clock, expect, at)


def push_coded(shard_id: int, idx: np.ndarray, spec: str, payload: np.ndarray, shape: tuple, *rest) -> None:
    """``push`` of values a worker sent through a quantizer (``ps/client.py``); ``rest``: the
    change rows' ``columns`` and ``order`` when it sent rows (``comm/rows.py``), then ``clock``,
    ``expect`` and ``at``."""
    values, rest = _decoded(spec, payload, shape, rest)
    push(shard_id, idx, values, *rest)


def push_pull_coded(shard_id: int, push_idx, spec: str, payload: np.ndarray, shape: tuple, *rest) -> np.ndarray:
    values, rest = _decoded(spec, payload, shape, rest)
    return push_pull(shard_id, push_idx, values, *rest)


def _decoded(spec: str, payload: np.ndarray, shape: tuple, rest: tuple) -> tuple:
    """The pushed values, and the call's arguments after them."""
    codec = codecs.parse(spec)
    if rest and isinstance(rest[0], tuple):  # change rows: (coded, plain, units) columns, the rows' order
        (coded, plain, units), order = rest[0], np.asarray(rest[1], dtype=np.int64)
        out = np.empty(shape)
        out[order] = rows.decode(codec, payload, shape[0], shape[1], coded, plain, 0, units=units)
        return out, rest[2:]
    return codecs.decode(codec, payload, int(np.prod(shape)), 0).reshape(shape), rest


def pull(shard_id: int, idx: np.ndarray, packed: bool = False) -> np.ndarray:
    """A shard's rows of ``idx`` (``packed``: as ``push_pull``'s)."""
    shard = _shard(shard_id)
    return shard.pull_packed(idx) if packed else shard.pull(idx)


def push_pull(shard_id: int, push_idx, values: np.ndarray, pull_idx: np.ndarray, worker: int = 0,
              at=None, packed: bool = False) -> np.ndarray:
    """Apply a push (``at`` as ``push``'s), then answer a pull: one round trip where a worker
    would make two. ``push_idx=None``: the keys this shard last answered ``worker`` here (key
    caching). ``packed``: a kernel shard's rows as the bytes of ``kernel_shard.packed`` (what
    an asp/ssp worker that codes its pushes pulls)."""
    cache = HOSTED.setdefault("answered", {})
    if push_idx is None:
        push_idx = cache[(shard_id, worker)]
    if push_idx.size:
        push(shard_id, push_idx, values, at=at)
    cache[(shard_id, worker)] = pull_idx
    shard = _shard(shard_id)
    return shard.pull_packed(pull_idx) if packed else shard.pull(pull_idx)


def create_clock(n_workers: int, start: int = 0) -> None:
    HOSTED["clock"] = Clock(n_workers)
    HOSTED["clock"].clocks[:] = start


def save_shard(shard_id: int, folder: str) -> str:
    """Write the shard's slice and optimizer state to ``folder/shard-S.npz`` (fsynced); its name."""
    name = f"shard-{shard_id}.npz"
    with open(os.path.join(folder, name), "wb") as f:
        np.savez(f, **HOSTED["shards"][shard_id].arrays())
        f.flush()
        os.fsync(f.fileno())
    return name


def load_shard(shard_id: int, path: str) -> None:
    """Restore the shard's slice and optimizer state from a checkpoint part."""
    from shardlearn.core.tree import unpack_state

    shard = HOSTED["shards"][shard_id]
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if isinstance(shard, KernelShard):
        shard.restore(arrays)
        return
    with shard.lock:
        shard.values[:] = arrays["values"]
        if "scale" in arrays:
            shard.scale = np.array(arrays["scale"])
        if shard.state is not None:
            shard.state = unpack_state("opt", arrays, shard.state)


def create_rounds(n_workers: int, every_examples: int | None, every_seconds: float | None) -> None:
    """The clock table of stream learners, with their checkpoint and stop rounds (``ps/rounds.py``)."""
    HOSTED["clock"] = Rounds(n_workers, every_examples, every_seconds)


def advance(worker: int, examples: int, idle: bool, finished: bool, stop: bool) -> tuple:
    return HOSTED["clock"].advance(worker, examples, idle, finished, stop)


def learned() -> int:
    """Examples the stream learners learned since the clock table was made."""
    return HOSTED["clock"].learned


def tick(worker: int) -> None:
    HOSTED["clock"].tick(worker)


@transport.async_execution
def wait_min(worker: int, target: int):
    fut = transport.new_future()
    HOSTED["clock"].wait_min(worker, target, fut.set_result)
    return fut


def grants() -> list:
    return list(HOSTED["clock"].grants)


def save_slices(folder: str | None) -> dict:
    """Write each hosted slice into ``folder`` (shared memory, for the driver to assemble the
    model; None: the system's temporary folder): ``{shard: path}``."""
    out = {}
    for shard_id, shard in HOSTED["shards"].items():
        fd, path = tempfile.mkstemp(prefix=f"shardlearn-slice-{shard_id}-", suffix=".npy", dir=folder)
        with os.fdopen(fd, "wb") as f:
            np.save(f, shard.weights())
        out[shard_id] = path
    return out


def pushes() -> dict:
    return {s: sh.pushes for s, sh in HOSTED["shards"].items()}
