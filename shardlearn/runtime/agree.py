"""What workers agree on besides the model: row counts and unions of labels or
categories, each by one collective over the workers' group.

>>> from shardlearn.comm.base import LocalCollective
>>> union(LocalCollective(), [3, 1, 3]), n_rows(LocalCollective(), 7)
([1, 3], 7)
"""
from __future__ import annotations

import json

import numpy as np


def n_rows(comm, local: int) -> int:
    """The rows of every worker together (``local`` alone without a group)."""
    if comm is None or comm.size <= 1:
        return int(local)
    return int(comm.allreduce(np.array([float(local)]))[0])


def union(comm, values) -> list:
    """The sorted union of every worker's ``values`` (labels, categories), by allgather."""
    local = sorted({v.item() if hasattr(v, "item") else v for v in values}, key=lambda v: (str(type(v)), v))
    blob = np.frombuffer(json.dumps(local).encode(), dtype=np.uint8)
    width = int(comm.allreduce(np.array([blob.size], dtype=np.float64), op="max")[0])
    padded = np.zeros(width + 8, dtype=np.uint8)
    padded[:8] = np.frombuffer(np.int64(blob.size).tobytes(), dtype=np.uint8)
    padded[8 : 8 + blob.size] = blob
    merged = set()
    for part in comm.allgather(padded):
        n = int(np.frombuffer(part[:8].tobytes(), dtype=np.int64)[0])
        merged.update(json.loads(part[8 : 8 + n].tobytes().decode()))
    return sorted(merged, key=lambda v: (str(type(v)), v))
