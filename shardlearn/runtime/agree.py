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


def moments(comm, stats: list, total: float, coarse: bool = False, fragile=None) -> tuple[np.ndarray, float]:
    """Every worker's column statistics (the preconditioner's moments, concatenated) and weight
    total summed. Float64 in one allreduce; ``coarse`` (a run under a codec) sends the
    statistics in float32, then the total, exact, in a second call: a preconditioner needs a
    feature's scale to a few digits, not sixteen (it conditions the problem, the optimum is the
    same), and on D2's 818k active columns the float64 moments were 20 of the 26 MB an ``int8``
    lbfgs fit sent. Entries past float32's range, and those ``fragile(sums, total)`` marks
    (a variance that cancels out of a sum of squares: a timestamp's column), are resent exactly
    in that second call; every worker decides it alike, from the same float32 sums.

    >>> from shardlearn.comm.base import LocalCollective
    >>> s, t = moments(LocalCollective(), [np.array([1.0, 2.0]), np.array([3.0])], 4.0, coarse=True)
    >>> s.dtype.name, s.tolist(), t
    ('float64', [1.0, 2.0, 3.0], 4.0)
    """
    vec = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in stats])
    if comm is None or comm.size <= 1:
        return vec, float(total)
    if not coarse:
        out = comm.allreduce(np.append(vec, float(total)))
        return out[:-1], float(out[-1])
    with np.errstate(over="ignore"):  # past float32's range: inf, resent below
        rough = comm.allreduce(np.append(vec, float(total)).astype(np.float32)).astype(np.float64)
    summed = rough[:-1]
    lost = ~np.isfinite(summed)  # a sum of squares of nanosecond timestamps passes 3.4e38
    if fragile is not None:
        lost |= fragile(summed, float(rough[-1]))
    redo = np.flatnonzero(lost)
    exact = comm.allreduce(np.append(vec[redo], float(total)))
    summed[redo] = exact[:-1]
    return summed, float(exact[-1])


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
