"""The torch.distributed backend: gloo on CPU, where shardlearn's arrays live; numpy arrays
go in and out without copies (``torch.from_numpy`` shares their memory and the
collectives run in place). A fit whose rows are on CUDA devices (``kernels/device.py``)
runs its allreduces and broadcasts over NCCL inside ``on_device(...)``: the buffer goes to
the device, NCCL reduces it there, and the result comes back into the same array.

Bytes are counted as a ring allreduce moves them: each rank sends and receives
``2 (p - 1) / p`` times the buffer.
"""
from __future__ import annotations

import contextlib
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from shardlearn.comm.base import CommStats, timed

_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN,
        "bor": dist.ReduceOp.BOR}  # bor: bitwise or of integer buffers (packed masks)


def init(rank: int, size: int, master_addr: str, master_port: int, timeout_s: float = 60.0, prefix: str = "",
         host_store: bool | None = None):
    """Join a gloo process group through a TCP store at ``master_addr:master_port``;
    ``prefix`` keeps each restart attempt's keys apart in the store. Rank 0 hosts the
    store unless ``host_store=False`` (under torchrun the agent already hosts it)."""
    is_master = (rank == 0) if host_store is None else host_store
    store = dist.TCPStore(master_addr, master_port, size, is_master=is_master, timeout=timedelta(seconds=timeout_s),
                          wait_for_workers=host_store is not False)
    if prefix:
        store = dist.PrefixStore(prefix, store)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=size, timeout=timedelta(seconds=timeout_s))
    return TorchCollective()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class TorchCollective:
    def __init__(self, group=None):
        self.group = group  # None: the default (whole) group
        self.rank = dist.get_rank(group)
        self.size = dist.get_world_size(group)
        self.stats = CommStats()
        self._nccl, self._device = None, None  # NCCL group (made on first use), the device while on_device
        torch.set_num_threads(1)

    @contextlib.contextmanager
    def on_device(self, device: str):
        """Within the block, allreduce and broadcast go through ``device``: NCCL between CUDA
        devices (its group made on first use: every rank enters together), else unchanged."""
        if not str(device).startswith("cuda") or self.size == 1:
            yield self
            return
        if self._nccl is None:
            ranks = None if self.group is None else dist.get_process_group_ranks(self.group)
            self._nccl = dist.new_group(ranks=ranks, backend="nccl")
        self._device = torch.device(device)
        torch.cuda.set_device(self._device)
        try:
            yield self
        finally:
            self._device = None

    def _through_device(self, x, run):
        """``run(tensor)`` on a device copy of ``x``, the result written back into ``x``."""
        t = torch.from_numpy(x).to(self._device)
        run(t)
        x[...] = t.cpu().numpy()
        return x

    def subgroup(self, n: int):
        """A collective over ranks ``0 .. n-1`` (every rank must call this); None on the others."""
        g = dist.new_group(list(range(n)))
        return TorchCollective(g) if self.rank < n else None

    def _ring(self, nbytes):
        return int(2 * (self.size - 1) * nbytes / self.size)

    def allreduce(self, x, op="sum"):
        x = np.ascontiguousarray(x)
        n = self._ring(x.nbytes)
        with timed(self.stats, "allreduce", n, n):
            if self._device is not None:
                return self._through_device(x, lambda t: dist.all_reduce(t, op=_OPS[op], group=self._nccl))
            dist.all_reduce(torch.from_numpy(x), op=_OPS[op], group=self.group)
        return x

    def broadcast(self, x, src=0):
        x = np.ascontiguousarray(x)
        n = x.nbytes
        with timed(self.stats, "broadcast", n if self.rank == src else 0, 0 if self.rank == src else n):
            if self._device is not None:
                return self._through_device(x, lambda t: dist.broadcast(t, src=src, group=self._nccl))
            dist.broadcast(torch.from_numpy(x), src=src, group=self.group)
        return x

    def allgather(self, x):
        x = np.ascontiguousarray(x)
        if not x.flags.writeable:  # torch refuses read-only buffers (e.g. np.frombuffer over bytes)
            x = x.copy()
        out = [np.empty_like(x) for _ in range(self.size)]
        with timed(self.stats, "allgather", x.nbytes * (self.size - 1), x.nbytes * (self.size - 1)):
            dist.all_gather([torch.from_numpy(o) for o in out], torch.from_numpy(x), group=self.group)
        return out

    def alltoall(self, parts):
        """``parts[j]`` goes to rank ``j``; returns what every rank sent this one, by rank (parts
        of one shape and dtype on every rank: one ``all_to_all_single``)."""
        send = np.ascontiguousarray(np.stack(parts))
        out = np.empty_like(send)
        n = send[0].nbytes * (self.size - 1)
        with timed(self.stats, "alltoall", n, n):
            dist.all_to_all_single(torch.from_numpy(out), torch.from_numpy(send), group=self.group)
        return list(out)

    def barrier(self):
        with timed(self.stats, "barrier", 0, 0):
            dist.barrier(group=self.group)
