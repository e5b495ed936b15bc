"""Per-example learning over the parameter server: a worker's batch step for
``strategies.ps_sgd.fit`` when the shards hold the kernel's state (``ps.kernel_shard``).

For each batch the worker pulls, for the keys its rows touch, the intercept's key and the
scalars' key, the kernel's state rows (weight, sum of squared gradients, scale, clock);
runs the compiled kernel (``kernels.sgd``) over the batch one row at a time on that local
copy; and pushes the change (``kernels.delta``), which the shards merge. So the adaptive
per-coordinate state lives on the shard with its weight, a step costs what the batch
touches, and under ``bsp`` (pushes held per clock) the shards compute exactly what the
allreduce ``bsp`` workers do (``strategies.online`` with ``sync="changes"``); ``ssp`` and
``asp`` merge each change as it arrives (asynchronous SGD with additive pushes: Dean et
al. 2012; Li et al. 2014, "Scaling distributed machine learning with the parameter server").
Under ``asp`` and ``ssp`` a batch's change rides with the next batch's pull: one round trip a step.
With other workers learning too, the pulled rows are first brought up to date with the
lazy penalty at the pulled clock and the push names that clock, where the shard brings its
rows before merging (``KernelShard.catch_up``): the decay of the rows before a batch is
taken once, not once for every worker whose batch touched the key.

>>> # runs on a worker group; see tests/test_ps_online.py
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from shardlearn.core.errors import DivergedError, overshoot
from shardlearn.kernels import columns, delta, sgd as kernel
from shardlearn.kernels.sgd import G, W
from shardlearn.strategies.online import coordinates
from shardlearn.strategies.ps_sgd import batch_columns


SCRATCH_WIDTH = 1 << 23  # the widest data compacted by the compiled pass (a 32 MB scratch)


class Learner:
    """``learner(client, X, which, yb, swb, held) -> (progressive loss sum, push handle)`` of
    one batch, for a model of ``d`` features: keys ``0..d-1`` the weights, ``d`` the intercept,
    ``d + 1`` the scalars; a softmax over ``classes`` K (``loss="softmax"``, class codes ``y``):
    key ``i K + k`` feature ``i``'s weight for class ``k``, ``d K + k`` the intercepts, ``(d + 1) K``
    the scalars (``kernels.sgd.new_state``'s layout, so a batch's pulled rows are its state)."""

    def __init__(self, d: int, loss: str, fit_intercept: bool, rule: str, lr: float, power_t: float = 0.0,
                 l1: float = 0.0, l2: float = 0.0, fuse: bool = False, workers: int = 1, anneal=None,
                 param: str = "optimizer", shift=None, classes: int = 1):
        self.classes = classes
        self.extra = np.arange(d * classes, (d + 1) * classes + 1, dtype=np.int64)  # intercepts, scalars
        self.param = param  # what the caller's user sets the rule by, named when the steps overflow
        self.shift = shift  # dense rows' centre (precond.centre; their batches pull every column), or None
        self.loss, self.fit_intercept = loss, fit_intercept
        self.opts = dict(rule=rule, lr=lr, power_t=power_t, l1=l1, l2=l2, classes=classes,
                         **(anneal or {}))  # anneal: end, span
        self.fuse, self.pending, self.alone = fuse, None, workers == 1
        self.pos = None  # the compiled batch's scratch: -1 for every column of the data
        self.ahead = None  # (X, rows, keys, Xc): the next batch, gathered while a round trip was in flight

    def _gather(self, X, which) -> tuple:
        """``(keys, Xc)``: rows ``which`` of ``X`` on the sorted columns they touch. In one
        compiled pass where the data is CSR and at most ``SCRATCH_WIDTH`` wide (its scratch
        holds an int32 per column); a wider hashed space takes numpy's way, so a worker's
        memory never grows with it."""
        if sp.issparse(X) and X.format == "csr" and X.shape[1] <= SCRATCH_WIDTH:
            if self.pos is None or self.pos.size != X.shape[1]:
                self.pos = np.full(X.shape[1], -1, dtype=np.int32)
            which = np.arange(*which.indices(X.shape[0])) if isinstance(which, slice) else which
            return columns.batch(X, which, self.pos)
        return batch_columns(X[which])

    def __call__(self, client, X, which, yb, swb, held, predictions=None, upcoming=None):
        """Learn rows ``which`` (a slice or indices) of ``X``, whose labels and weights are ``yb``
        and ``swb`` (or None). ``predictions`` (or None) receives each row's score before its
        update. With ``fuse`` (asp, ssp) a batch's change is not pushed at once: it travels
        with the next batch's pull (``Client.push_pull``, one round trip a step, the shard
        applying the push before it answers), or with ``flush``; the push handle returned is
        then None. ``upcoming`` (or None): the rows of the next call, gathered while this
        call's pull is in flight (the compiled gather releases the GIL, and the answer
        arrives meanwhile), so the next call starts with its request."""
        ahead, self.ahead = self.ahead, None
        if ahead is not None and ahead[0] is X and _same(ahead[1], which):
            keys, Xc = ahead[2], ahead[3]
        else:
            keys, Xc = self._gather(X, which)
        keys = np.concatenate([coordinates(keys, self.classes), self.extra])
        if self.pending is not None:
            handle = client.push_pull(*self.pending[:2], keys, at=self.pending[2])
            self.pending = None
        else:
            handle = client.pull(keys)
        if upcoming is not None:
            self.ahead = (X, upcoming, *self._gather(X, upcoming))
        rows = client.wait(handle)
        state = {"ws": np.ascontiguousarray(rows[:-1]), "scalars": rows[-1, [W, G]].copy()}
        at = None if self.alone else state["scalars"].copy()
        if at is not None:  # the rows up to date at the pulled clock (the intercepts, last, are never penalised)
            delta.start(state, np.arange(keys.size - 1), self.opts)
        before, s0 = state["ws"].copy(), state["scalars"].copy()
        z = None if self.classes > 1 else np.empty(Xc.shape[0]) if predictions is None else predictions
        out = kernel.run(state, Xc, yb, swb, np.arange(Xc.shape[0]), loss=self.loss,
                         fit_intercept=self.fit_intercept, predictions=z,
                         shift=self.shift if not sp.issparse(Xc) else None, **self.opts)
        if z is None:  # a softmax scores no rows as it learns: the batch's last row names the place
            row = None if np.isfinite(out[0]) else Xc.shape[0] - 1
        else:
            row = kernel.overflowed(out, self.loss, z, yb, np.ones(z.size) if swb is None else swb)
        if row is not None:  # never pushed: the shards keep the model as it was before this batch
            what = f"loss overflowed to inf or NaN: {overshoot(self.param, self.opts['rule'], self.opts['lr'])}"
            raise DivergedError(f"the fit's {what}", row=row, reason=f"the {what}")
        change = np.zeros((keys.size, 4))
        change[:-1] = delta.change(before, state["ws"], self.opts["rule"])
        change[-1, [W, G]] = state["scalars"] - s0
        if self.fuse:
            self.pending = (keys, change, at)
            return float(out[0]), None
        return float(out[0]), client.push(keys, change, at=at, **held)

    def flush(self, client) -> None:
        """Push a change still held back (at an epoch's end, before a checkpoint)."""
        if self.pending is not None:
            client.wait(client.push(*self.pending[:2], at=self.pending[2]))
            self.pending = None


def _same(a, b) -> bool:
    """Rows ``a`` and ``b`` (slices or index arrays) are the same rows in the same order."""
    if isinstance(a, slice) or isinstance(b, slice):
        return isinstance(a, slice) and isinstance(b, slice) and a == b
    return a.shape == b.shape and np.array_equal(a, b)
