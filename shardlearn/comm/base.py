"""The ``Collective`` protocol (rank, size, allreduce, broadcast, allgather, alltoall,
barrier) and the one-process backend. Every backend counts bytes and seconds
per call, so a strategy can report communication cost per step.

>>> import numpy as np
>>> c = LocalCollective()
>>> x = np.array([1.0, 2.0])
>>> c.allreduce(x) is x, c.size, c.stats.calls
(True, 1, 1)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class CommStats:
    """Running totals; ``snapshot()`` and differences give per-step figures. ``durations``:
    each call's seconds in order, kept only while a list is set there (a ``StepLog`` sets one
    and takes its step's calls at every step) and dropped (None) past ``MAX_DURATIONS`` calls."""

    MAX_DURATIONS = 1 << 20

    calls: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    seconds: float = 0.0
    by_op: dict = field(default_factory=dict)
    durations: list | None = None

    def add(self, op: str, sent: int, received: int, seconds: float) -> None:
        self.calls += 1
        self.bytes_sent += sent
        self.bytes_received += received
        self.seconds += seconds
        self.by_op[op] = self.by_op.get(op, 0) + 1
        if self.durations is not None:
            self.durations.append(seconds)
            if len(self.durations) > self.MAX_DURATIONS:  # nobody is taking them: stop keeping them
                self.durations = None

    def snapshot(self) -> dict:
        return {"calls": self.calls, "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
                "comm_seconds": self.seconds}


class Collective(Protocol):
    rank: int
    size: int
    stats: CommStats

    def allreduce(self, x: np.ndarray, op: str = "sum") -> np.ndarray: ...

    def broadcast(self, x: np.ndarray, src: int = 0) -> np.ndarray: ...

    def allgather(self, x: np.ndarray) -> list[np.ndarray]: ...

    def alltoall(self, parts: list[np.ndarray]) -> list[np.ndarray]: ...

    def barrier(self) -> None: ...


class LocalCollective:
    """One process: every operation is the identity, with no copies."""

    rank = 0
    size = 1

    def __init__(self):
        self.stats = CommStats()

    def _count(self, op):
        self.stats.add(op, 0, 0, 0.0)

    def allreduce(self, x, op="sum"):
        self._count("allreduce")
        return x

    def broadcast(self, x, src=0):
        self._count("broadcast")
        return x

    def allgather(self, x):
        self._count("allgather")
        return [x]

    def alltoall(self, parts):
        self._count("alltoall")
        return list(parts)

    def barrier(self):
        self._count("barrier")


def timed(stats: CommStats, op: str, sent: int, received: int):
    """Context manager adding one call's bytes and wall time to ``stats``."""

    class _T:
        def __enter__(self):
            self.t = time.perf_counter()

        def __exit__(self, *exc):
            stats.add(op, sent, received, time.perf_counter() - self.t)
            return False

    return _T()
