"""What workers agree on besides the model: row counts and unions of labels or
categories, each by one collective over the workers' group.

>>> from shardlearn.comm.base import LocalCollective
>>> union(LocalCollective(), [3, 1, 3]), n_rows(LocalCollective(), 7), sum_counts(LocalCollective(), {"NaN": 2})
([1, 3], 7, {'NaN': 2})
"""
from __future__ import annotations

import json

import numpy as np


def n_rows(comm, local: int) -> int:
    """The rows of every worker together (``local`` alone without a group)."""
    if comm is None or comm.size <= 1:
        return int(local)
    return int(comm.allreduce(np.array([float(local)]))[0])


def most_rows(comm, local: int) -> int:
    """The rows of the largest worker (``local`` alone without a group)."""
    if comm is None or comm.size <= 1:
        return int(local)
    return int(comm.allreduce(np.array([float(local)]), op="max")[0])


def union(comm, values) -> list:
    """The sorted union of every worker's ``values`` (labels, categories), by allgather."""
    local = sorted({v.item() if hasattr(v, "item") else v for v in values}, key=lambda v: (str(type(v)), v))
    merged = set()
    for part in _allgather_json(comm, local):
        merged.update(part)
    return sorted(merged, key=lambda v: (str(type(v)), v))


def sum_counts(comm, counts: dict) -> dict:
    """Every worker's counts by reason (skipped rows...) added up, by allgather."""
    total: dict = {}
    for part in _allgather_json(comm, {str(k): int(v) for k, v in counts.items()}):
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return total


def _allgather_json(comm, obj) -> list:
    """Every worker's ``obj`` (anything JSON holds), in rank order."""
    blob = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)
    width = int(comm.allreduce(np.array([blob.size], dtype=np.float64), op="max")[0])
    padded = np.zeros(width + 8, dtype=np.uint8)
    padded[:8] = np.frombuffer(np.int64(blob.size).tobytes(), dtype=np.uint8)
    padded[8 : 8 + blob.size] = blob
    out = []
    for part in comm.allgather(padded):
        n = int(np.frombuffer(part[:8].tobytes(), dtype=np.int64)[0])
        out.append(json.loads(part[8 : 8 + n].tobytes().decode()))
    return out
