"""Local SGD's averaging at the cost of what the workers touched: on wide sparse data (D2:
818,000 active columns of 2^22 hashed ones, ~51,000 touched by a worker's 16,384 rows) the
workers average only the coordinates any of them moved since the last average, not the
whole model.

Each worker names the columns its rows touched in the window; the union is gathered; each
worker brings those coordinates up to date with the lazy penalty at its own clock
(``kernels.sgd.catch_up``) and the weights (FTRL: and ``z``) of the union are averaged,
weighted by the examples each worker used, in one allreduce as long as the union. On the
union this is exactly the dense average (``strategies.online._average``, which finalizes
every coordinate first). A coordinate nobody touched keeps, on each worker, its value from
the last average and its own lazy penalty clock: without a penalty that *is* the dense
average (no worker moved it); with one, each worker's copy decays at that worker's own rate
until some worker touches it again (then the union averages the decayed copies) or the
epoch ends, where the average is dense and the replicas equal again. So the penalty of an
untouched coordinate is averaged late, not lost. Vowpal Wabbit's allreduce averages the
whole weight array once a pass; Zinkevich et al. 2010 and Stich 2019 for local SGD itself.

Sparse only pays while the keys are few: when the keys all workers would gather plus the
union's values outweigh the dense vector, the window is averaged densely (every worker
sees the same counts, so all choose alike).

>>> import numpy as np, scipy.sparse as sp
>>> X = sp.csr_matrix(np.array([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 1.0]]))
>>> SparseAverage(None, X, {}, [0]).keys(np.array([0, 1])).tolist()  # columns 1 and 3, the intercept (4)
[1, 3, 4]
"""
from __future__ import annotations

import numpy as np

from shardlearn.kernels import columns, sgd as kernel


class SparseAverage:
    """One worker's sparse averaging over ``comm``: its scratch for the touched columns of
    CSR ``X`` (``d`` booleans, reused) and the columns the rule averages."""

    def __init__(self, comm, X, opts: dict, cols: list):
        self.comm, self.X, self.opts, self.cols = comm, X, opts, cols
        self.seen = np.zeros(X.shape[1] + 1, dtype=np.bool_)  # the columns and the intercept

    def keys(self, part) -> np.ndarray:
        """The coordinates rows ``part`` touch, the intercept (``d``) last."""
        return np.append(columns.touched(self.X, part, self.seen), self.X.shape[1])

    def __call__(self, state: dict, keys: np.ndarray, used: float, dense) -> float:
        """Average ``state`` with every worker's after a window in which this one touched
        ``keys`` and learned from weight ``used``; ``dense(state, used)`` averages the whole
        model (the caller's way) when that moves fewer bytes. Returns the weight all used (0:
        nobody learned, nothing changes)."""
        comm, cols = self.comm, self.cols
        counts = np.vstack(comm.allgather(np.array([used, float(keys.size)])))
        total, widest = float(counts[:, 0].sum()), int(counts[:, 1].max())
        if total <= 0:
            return 0.0
        rows = self.X.shape[1] + 1
        if comm.size * widest + len(cols) * counts[:, 1].sum() >= len(cols) * rows:  # as many bytes as dense
            return dense(state, used)
        buf = np.full(widest + 1, -1, dtype=np.int32 if rows < 2**31 else np.int64)  # keys at 4 bytes where they fit
        buf[0] = keys.size
        buf[1 : keys.size + 1] = keys
        # the same order on every worker (the gathered lists in rank order), no sort needed
        union = columns.distinct(np.concatenate([p[1 : int(p[0]) + 1] for p in comm.allgather(buf)]), self.seen)
        kernel.catch_up(state, union, **self.opts)
        ws, at = state["ws"], (union[:, None], cols)
        mine = ws[at] * (used / total)
        ws[at] = comm.allreduce(mine.ravel()).reshape(mine.shape)
        return total
