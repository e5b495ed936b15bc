"""Changes to the per-example kernel's state (``kernels.sgd``), and their merge: how
workers that learned from different rows, starting from the same state, combine their
work (``bsp`` over a collective, the parameter-server shards under ``bsp``/``ssp``/``asp``).

A worker runs the kernel over its batch, then sends the rows of the coordinates the batch
touched as a *change*: the weight and the sum of squared gradients as differences (FTRL's
``z`` too), the scale (the normalized rule's largest ``|x|``) as its new value, and the
penalty clock's advance (the rows whose decay the change holds). Merging adds the
differences and the advances and takes the largest scale, so the sum of every worker's
change is the mini-batch step of their per-example updates (a delayed update: Langford,
Smola & Zinkevich 2009, "Slow learners are fast"; the parameter server's additive push, Li
et al. 2014), and the adaptive sums count every worker's gradients. One worker merging its
own change gets exactly its state back. The scalars ``[t, N]`` (weight seen, normalizer
sum) add like a coordinate's sums.

A coordinate's clock says up to which row of the merged clock its lazy penalty is taken.
Two workers that touched it in every row of a 256-row exchange each bring 256 rows of decay;
the merged clock moved 512 rows, and the coordinate has taken all 512. Merged by their
largest clock it would say 256, and the next catch-up would decay it by 256 rows again:
the penalty taken 1.5 times over on 2 workers' dense rows (``bsp`` x2 on elec2 at alpha 1e-4
ended at 1.021 x L*, ``benchmarks/results/defaults-elec2-before``; by hand 1.020 after 4
epochs too, its largest weight 17.8 against the optimum's 22.2).
Added, the clock counts every row's decay once.

Under the normalized rule a weight lives in its scale's units: a row with a larger ``|x|``
first shrinks it by ``s/|x|``. A change's weight difference is taken from the weight as
rescaled to the change's own scale, and a merge rescales whichever side is at the smaller
scale, as the kernel would have: a step learned at a scale another worker has since
outgrown moves the weight by ``s_small/s_large`` of itself. (Added as they were, a
worker's steps at scale 2 landed on a weight already at scale 2,000 a thousand times too
large: ``bsp`` x2 on kddcup99's raw byte counts ended at 1.16 x L*, not 0.95.)

>>> import numpy as np
>>> before = np.array([[0.5, 1.0, 2.0, 3.0]])       # weight, adaptive sum, scale, clock
>>> a = change(before, np.array([[0.75, 2.0, 4.0, 5.0]]), "normalized")  # saw |x| = 4: 0.25 + 0.5
>>> b = change(before, np.array([[1.0, 2.0, 2.0, 5.0]]), "normalized")   # learned +0.5 at scale 2
>>> a.tolist(), b.tolist()                          # the clock: 2 rows' decay each
([[0.5, 1.0, 4.0, 2.0]], [[0.5, 1.0, 2.0, 2.0]])
>>> ws = before.copy(); merge(ws, np.array([0, 0]), np.vstack([a, b]), "normalized"); ws.tolist()
[[1.0, 3.0, 4.0, 7.0]]
>>> ws = before.copy(); merge(ws, np.array([0]), a, "normalized"); ws.tolist()  # its own change: its state
[[0.75, 2.0, 4.0, 5.0]]
"""
from __future__ import annotations

import numpy as np
from numba import njit

from shardlearn.kernels import sgd
from shardlearn.kernels.prefetch import prefetch
from shardlearn.kernels.sgd import G, L, S, W


def columns(rule: str) -> tuple[list, list, tuple | None]:
    """``(additive, plain, units)``: the columns of a change that are differences the codec
    may round (they add when merged), those sent as they are (the scale, merged by its
    maximum; the clock's advance, added; FTRL's clock, a maximum), and the units the codec
    (``comm.rows``) sees the differences in and keeps their error-feedback residuals in, as
    powers of a column: under the normalized rule ``(S, [1, -2], [1, 0])``. Coded: a weight
    times its scale (its feature's effect on a score) and a sum of squared gradients over the
    scale squared (free of it), so one int8 block serves raw byte counts and 0/1 features
    alike. Kept: a weight times its scale, which a grown scale leaves as it is (the kernel
    shrinks the weight by ``s_old/s_new``), and the sum raw, which it leaves alike; so a
    residual needs no record of the scale it was left at. None: as they are.

    >>> columns("normalized"), columns("ftrl")
    (([0, 1], [2, 3], (2, [1, -2], [1, 0])), ([0, 1, 2], [3], None))
    """
    if rule == "ftrl":
        return [W, G, S], [L], None
    return [W, G], [S, L], ((S, [1, -2], [1, 0]) if rule == "normalized" else None)


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
    if rule == "normalized":  # the weight as rescaled to the change's scale, as the kernel did on a larger |x|
        s0, s1 = before[:, S], out[:, S]
        out[:, W] -= before[:, W] * np.where((s0 > 0) & (s1 > s0), s0 / np.where(s1 > 0, s1, 1.0), 1.0)
    else:
        out[:, W] -= before[:, W]
    out[:, G] -= before[:, G]
    if rule == "ftrl":  # z accumulates: its difference adds; its weight needs no clock (a maximum)
        out[:, S] -= before[:, S]
    else:  # the rows whose decay this change took: merged, every worker's add up
        out[:, L] -= before[:, L]
    return out


SAME = 1e-6  # scales closer than this (relative) are one: a pull packed as float32 rounds them


@njit(cache=True, nogil=True)  # other RPC threads and the learner run meanwhile
def _merge(ws, keys, rows, s_adds, rescales):
    for j in range(keys.size):
        if j + 8 < keys.size:  # a shard's rows are far apart in a wide model: asked for ahead
            prefetch(ws, keys[j + 8])
        c = ws[keys[j]]
        r = rows[j]
        dw = r[W]
        if rescales and r[S] > 0 and c[S] > 0 and abs(r[S] - c[S]) > SAME * c[S]:
            if r[S] > c[S]:  # the change saw a larger |x|: the weight here rescales first, as the kernel does
                c[W] *= c[S] / r[S]
            else:  # a change learned at a smaller scale than this one's moves the weight that much less
                dw *= r[S] / c[S]
        c[W] += dw
        c[G] += r[G]
        if s_adds:  # FTRL: z adds, its clock is a maximum
            c[S] += r[S]
            if r[L] > c[L]:
                c[L] = r[L]
        else:
            if r[S] > c[S]:
                c[S] = r[S]
            c[L] += r[L]


@njit(cache=True, nogil=True)
def _rows_at(ws, keys, out):
    for j in range(keys.size):
        if j + 8 < keys.size:
            prefetch(ws, keys[j + 8])
        for c in range(ws.shape[1]):
            out[j, c] = ws[keys[j], c]


def rows_at(ws: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``ws[keys]`` as float64 (a shard's pull), gathered with the rows asked for ahead: numpy's
    fancy index waits on each of a wide model's far-apart rows in turn (about 2.7x slower on
    80,000 sorted keys of 4M, by hand).

    >>> rows_at(np.arange(8.0).reshape(4, 2), np.array([3, 1])).tolist()
    [[6.0, 7.0], [2.0, 3.0]]
    """
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    if keys.size and (keys.min() < 0 or keys.max() >= ws.shape[0]):  # the compiled gather checks no bounds
        bad = keys[(keys < 0) | (keys >= ws.shape[0])][0]
        raise IndexError(f"index {bad} is out of bounds for a state of {ws.shape[0]} rows")
    out = np.empty((keys.size, ws.shape[1]))
    _rows_at(ws, keys, out)
    return out


def merge(ws: np.ndarray, keys: np.ndarray, rows: np.ndarray, rule: str) -> None:
    """Add changes ``rows`` (``(k, 4)``, from ``change``) to the state rows ``ws[keys]`` in
    place; repeated keys (several workers' changes) all apply, in order."""
    _merge(ws, np.ascontiguousarray(keys, dtype=np.int64), np.ascontiguousarray(rows, dtype=ws.dtype), rule == "ftrl",
           rule == "normalized")
