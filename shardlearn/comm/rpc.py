"""Point-to-point calls for the parameter server, on torch.distributed.rpc
(TensorPipe). The transport knows processes and functions, not learning: the
parameter server's handlers live in ``shardlearn.ps.host`` and any transport
offering ``call``/``wait``/``close`` can replace this one (torch's RPC is in
maintenance mode upstream).

Numpy arrays in a call's arguments and its answer travel as torch tensors, which
TensorPipe sends as buffers of their own: pickled inside the message, a 3.2 MB array
took 45 ms a round trip on this machine's loopback, as a tensor 6.6 ms (hand-measured,
one process calling itself; ~1.5 ms for a small call).
"""
from __future__ import annotations

import warnings
from datetime import timedelta

import numpy as np
import torch
import torch.distributed.rpc as rpc

_TENSOR_KINDS = "biuf"  # bool, int, unsigned, float: the arrays torch can hold without a copy


def name(rank: int) -> str:
    return f"ps{rank}"


def new_future():
    """A future a handler returns unfinished and completes later (``async_execution``)."""
    return torch.futures.Future()


async_execution = rpc.functions.async_execution


def _to_wire(x):
    if isinstance(x, np.ndarray) and x.dtype.kind in _TENSOR_KINDS and x.dtype.byteorder in "=|":
        return torch.from_numpy(np.ascontiguousarray(x))
    return x


def _from_wire(x):
    return x.numpy() if isinstance(x, torch.Tensor) else x


def _run(fn, *args):
    """On the callee: the arrays back from tensors, ``fn`` called, its array answer as a tensor."""
    return _to_wire(fn(*(_from_wire(a) for a in args)))


class RpcTransport:
    def __init__(self, rank: int, world_size: int, addr: str, port: int, timeout_s: float = 120.0, threads: int = 16):
        # ``_transports`` is TensorPipe's one knob for the transport, private in torch's API; it is
        # used here only: libuv TCP, since the shared-memory transport needs the same /dev/shm
        # namespace on every host (and measured slower on one machine, docs/gotchas.md)
        # and the IB transport hardware we do not have
        opts = rpc.TensorPipeRpcBackendOptions(init_method=f"tcp://{addr}:{port}", num_worker_threads=threads,
                                               rpc_timeout=timeout_s, _transports=["uv"])
        with warnings.catch_warnings():  # torch warns about its own use of a gloo group in RPC setup
            warnings.simplefilter("ignore", UserWarning)
            rpc.init_rpc(name(rank), rank=rank, world_size=world_size, rpc_backend_options=opts)
        self.rank, self.size, self.calls = rank, world_size, 0
        self.timeout = timedelta(seconds=timeout_s)

    def call(self, dest: int, fn, *args):
        """Start ``fn(*args)`` on rank ``dest``; returns a handle for ``wait``. A call to this
        process's own rank runs here at once (handlers guard their state with locks, since the
        RPC threads run other ranks' calls at the same time)."""
        self.calls += 1
        answers_later = getattr(fn, "_wrapped_async_rpc_function", None) is not None
        if dest == self.rank:  # this process hosts it: called here, with no trip through TensorPipe
            if answers_later:
                return fn(*args)
            done = torch.futures.Future()
            try:
                done.set_result(fn(*args))
            except Exception as e:  # noqa: BLE001 - raised by wait, as a remote call's error is
                done.set_exception(e)
            return done
        if answers_later:  # called as it is (its future is the answer)
            return rpc.rpc_async(name(dest), fn, args=args)
        return rpc.rpc_async(name(dest), _run, args=(fn, *(_to_wire(a) for a in args)))

    @staticmethod
    def wait(handle):
        return _from_wire(handle.wait())

    def close(self) -> None:
        """Leave once every rank has called ``close`` (a barrier over the RPC group)."""
        with warnings.catch_warnings():  # torch warns about its own use of a gloo group in shutdown
            warnings.simplefilter("ignore", UserWarning)
            rpc.shutdown(graceful=True)
