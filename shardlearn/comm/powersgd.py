"""PowerSGD: the sum over workers of each worker's matrix ``M_i`` (``n x m``, a softmax's
weight gradient or change), sent as rank-``R`` factors (Vogels, Karimireddy & Jaggi 2019,
"PowerSGD: Practical Low-Rank Gradient Compression for Distributed Optimization").

One step of subspace iteration, warm-started from the last step's ``Q``, over two
allreduces of float64 factors instead of one of the matrix:

1. ``P = sum_i (M_i + e_i) Q`` (allreduce of ``n x R``), orthonormalised (``P^`` by a
   reduced QR: the same on every worker, since ``P`` is);
2. ``Q' = sum_i (M_i + e_i)^T P^`` (allreduce of ``m x R``); the sum is ``P^ Q'^T``;
3. error feedback: each worker keeps ``e_i = M_i + e_i - P^ (M_i + e_i)^T P^`` ^T, what
   its own share of the approximation left out, and adds it next time; ``Q'`` starts the
   next step (the power iteration's warm start, which makes one step a round enough).

Both allreduces are linear, so the factors sum where a quantized payload could not (no
allgather: the bytes do not grow with the workers). ``Q`` starts from a seed every worker
shares. Bytes per step: ``R (n + m)`` values against ``n m``. Biased (a low-rank sum is
not the sum): with error feedback, what is left out is sent later. PyTorch's DDP hook of
the same name needs NCCL (pytorch #58467: it fails on gloo); this one runs on any
collective with ``allreduce``.

>>> import numpy as np
>>> from shardlearn.comm import LocalCollective
>>> M = np.outer([1.0, 2.0, 3.0], [1.0, -1.0])  # rank 1: a rank-1 sum is exact
>>> out, state = summed(LocalCollective(), M, init(M.shape, 1, seed=0), error_feedback=True)
>>> np.allclose(out, M), np.allclose(state.residual, 0)
(True, True)
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class PowerState(NamedTuple):
    q: np.ndarray  # m x R: the last step's right factor (the warm start)
    residual: np.ndarray  # n x m: error feedback (empty when off)


def init(shape: tuple, rank: int, seed: int = 0, error_feedback: bool = True) -> PowerState:
    """The first ``Q``, drawn from a seed every worker shares, and a zero residual."""
    n, m = shape
    q = np.random.default_rng([int(seed), 0x9057]).standard_normal((m, int(rank)))
    return PowerState(q, np.zeros((n, m)) if error_feedback else np.zeros(0))


def applies(shape: tuple, rank: int) -> bool:
    """Whether a rank-``rank`` pair of factors is smaller than the matrix itself (else it
    travels whole: vectors, and matrices too narrow to gain)."""
    return len(shape) == 2 and rank * (shape[0] + shape[1]) < shape[0] * shape[1]


def summed(comm, M: np.ndarray, state: PowerState, error_feedback: bool = True) -> tuple[np.ndarray, PowerState]:
    """``(sum over workers of their M, rank-R approximated; the new state)``."""
    M = np.asarray(M, dtype=np.float64)
    x = M + state.residual if error_feedback else M
    p = comm.allreduce(x @ state.q)
    p_hat, _ = np.linalg.qr(p)  # reduced: n x R with orthonormal columns
    mine = x.T @ p_hat
    q = comm.allreduce(mine.copy())  # a collective may sum in place (gloo's does): ``mine`` is needed below
    residual = x - p_hat @ mine.T if error_feedback else state.residual
    return p_hat @ q.T, PowerState(q, residual)
