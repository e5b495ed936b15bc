"""Parameter-server shards in one machine's shared memory: the workers of a machine push to
and pull from each other's kernel shards in place rather than by RPC (shared-memory push and
pull between co-located workers and servers, as BytePS does: Jiang et al. 2020, "A unified
architecture for accelerating distributed DNN training in heterogeneous GPU/CPU clusters").
Each shard's host makes its state a file of the group's scratch folder (``ps.host.create``
with a path), every other worker maps it (``ps.host.attach``), and the client calls those
shards in its own process (``ps.client.Client(near=...)``) under a lock every process holds
(``ps.kernel_shard.SharedLock``). The shards, their merges, key caching and checkpoints are
the RPC path's; only the transport differs.

>>> path(None, 0) is None, path("/dev/shm/x", 1)
(True, '/dev/shm/x/shard-1.npy')
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

from shardlearn.ps import host
from shardlearn.runtime import launch
from shardlearn.runtime.agree import union


def folder(comm, cfg, n_keys: int) -> str | None:
    """Where the shards' state is mapped from: per-example ``asp`` or ``ssp``, every worker
    hosting a shard (``servers=0``), more than one worker, every rank on this machine, and twice
    the state's size free in the scratch folder (``/dev/shm``: a container's may be 64 MB, and
    writing past a tmpfs's room is a SIGBUS). None: RPC, as across machines, for one worker (its
    shard is its own), for ``bsp`` (a clock's pushes are held by the shard's host) and for
    dedicated servers (a model larger than a worker)."""
    make = False
    if comm.rank == 0 and cfg.per_example and cfg.plan in ("asp", "ssp") and not cfg.servers and comm.size > 1:
        total, here = launch.ranks_here()
        base = launch.scratch_dir() or tempfile.gettempdir()
        room = os.statvfs(base).f_bavail * os.statvfs(base).f_frsize
        make = total == here and room > 2 * n_keys * 4 * np.dtype(cfg.ps_dtype).itemsize
    return seen_by_all(comm, make, "shardlearn-shards-")


def seen_by_all(comm, make: bool, prefix: str) -> str | None:
    """A folder every rank sees, made by rank 0 (where ``make``) in the scratch folder (the
    group's, removed with it): rank 0 writes a token into it, and it is returned only if every
    rank reads that token there; else rank 0 removes it and every rank gets None. A rank of
    another machine (a torchrun node, a Ray, Dask or Spark executor elsewhere, whose
    environment need not say so) does not see it. Collective: every rank calls it."""
    mine = []
    if comm.rank == 0 and make:
        where, token = tempfile.mkdtemp(prefix=prefix, dir=launch.scratch_dir()), os.urandom(16).hex()
        with open(os.path.join(where, "token"), "w") as f:
            f.write(token)
        mine = [f"{where}\n{token}"]
    got = union(comm, mine)
    if not got:
        return None
    where, token = got[0].split("\n")
    seen = _read(os.path.join(where, "token")) == token
    if comm.allreduce(np.array([float(seen)]), op="min")[0] == 1.0:
        return where
    if comm.rank == 0:
        shutil.rmtree(where, ignore_errors=True)
    return None


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def path(where: str | None, shard: int) -> str | None:
    """Shard ``shard``'s state file in ``where`` (None: not shared)."""
    return None if where is None else os.path.join(where, f"shard-{shard}.npy")


def attach(where: str | None, specs: list, hosts: list, rank: int) -> None:
    """Map every shard another rank hosts (``specs``: ``host.create``'s arguments by shard), once
    their hosts made them; nothing when ``where`` is None."""
    if where is not None:
        for spec, h in zip(specs, hosts):
            if h != rank:
                host.attach(*spec)


def forget(comm, where: str | None) -> None:
    """Once every rank has mapped the state and opened the lock files in ``where``: rank 0
    removes the folder. The maps and open files keep the memory until the last process lets go
    of them (``release``, or its death), so a killed or failed run leaves nothing behind, also
    in ``/dev/shm`` itself (under torchrun, where no group folder is removed after the job).
    Collective: every rank calls it."""
    if where is not None:
        comm.barrier()
        if comm.rank == 0:
            shutil.rmtree(where, ignore_errors=True)


def release(where: str | None) -> None:
    """After the slices are saved: the shared state unmapped in this process; the memory is
    freed when the last process lets go of its map (the folder is gone since ``forget``)."""
    if where is not None:
        host.reset()
