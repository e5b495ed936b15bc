"""Changes to the per-example kernel's state (``kernels.sgd``), and their merge: how
workers that learned from different rows, starting from the same state, combine their
work (``bsp`` over a collective, the parameter-server shards under ``bsp``/``ssp``/``asp``).

A worker runs the kernel over its batch, then sends the rows of the coordinates the batch
touched as a *change*: the weight and the sum of squared gradients as differences (FTRL's
``z`` too), the scale (the normalized rule's largest ``|x|``) and the penalty clock as
their new values. Merging adds the differences and takes the largest scale and clock, so
the sum of every worker's change is the mini-batch step of their per-example updates (a
delayed update: Langford, Smola & Zinkevich 2009, "Slow learners are fast"; the
parameter server's additive push, Li et al. 2014), and the adaptive sums count every
worker's gradients. One worker merging its own change gets exactly its state back. The
scalars ``[t, N]`` (weight seen, normalizer sum) add like a coordinate's sums.

>>> import numpy as np
>>> before = np.array([[0.5, 1.0, 2.0, 3.0]]); after = np.array([[0.25, 2.0, 4.0, 5.0]])
>>> ch = change(before, after, "normalized"); ch.tolist()
[[-0.25, 1.0, 4.0, 5.0]]
>>> ws = before.copy(); merge(ws, np.array([0, 0]), np.vstack([ch, ch]), "normalized"); ws.tolist()
[[0.0, 3.0, 4.0, 5.0]]
"""
from __future__ import annotations

import numpy as np
from numba import njit

from shardlearn.kernels import sgd
from shardlearn.kernels.sgd import G, L, S, W


def columns(rule: str) -> tuple[list, list]:
    """``(additive, maxima)``: the columns of a change that are differences (they add when
    merged) and those that are values (merged by their maximum).

    >>> columns("normalized"), columns("ftrl")
    (([0, 1], [2, 3]), ([0, 1, 2], [3]))
    """
    return ([W, G, S], [L]) if rule == "ftrl" else ([W, G], [S, L])


def start(state: dict, keys: np.ndarray, opts: dict) -> None:
    """Coordinates ``keys`` of ``state`` brought up to date with the lazy penalty at its clock
    (``sgd.catch_up``: a clock never moves back): where a worker's change starts from, and
    where a merge brings every key first, so the decay of the rows before an exchange is
    taken once, however many workers' changes touch a key. ``opts``: the kernel's options
    (and ``free``). FTRL has nothing to bring: its weight follows from ``z`` and ``n`` in
    closed form at each touch, and its changes add as they are."""
    if opts["rule"] != "ftrl":
        sgd.catch_up(state, keys, **opts)


def change(before: np.ndarray, after: np.ndarray, rule: str) -> np.ndarray:
    """The change from coordinate rows ``before`` to ``after`` (both ``(k, 4)``)."""
    out = np.array(after, dtype=np.float64)
    out[:, W] -= before[:, W]
    out[:, G] -= before[:, G]
    if rule == "ftrl":  # z accumulates: its difference adds; a scale is a maximum
        out[:, S] -= before[:, S]
    return out


@njit(cache=True, nogil=True)  # other RPC threads and the learner run meanwhile
def _merge(ws, keys, rows, s_adds):
    for j in range(keys.size):
        c = ws[keys[j]]
        r = rows[j]
        c[W] += r[W]
        c[G] += r[G]
        if s_adds:
            c[S] += r[S]
        elif r[S] > c[S]:
            c[S] = r[S]
        if r[L] > c[L]:
            c[L] = r[L]


def merge(ws: np.ndarray, keys: np.ndarray, rows: np.ndarray, rule: str) -> None:
    """Add changes ``rows`` (``(k, 4)``, from ``change``) to the state rows ``ws[keys]`` in
    place; repeated keys (several workers' changes) all apply, in order."""
    _merge(ws, np.ascontiguousarray(keys, dtype=np.int64), np.ascontiguousarray(rows, dtype=ws.dtype), rule == "ftrl")
