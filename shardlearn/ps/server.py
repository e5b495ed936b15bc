"""A parameter-server shard and the clock table that bounds staleness.

``Shard`` holds one slice of the parameters and, next to it, the server-side
optimizer's per-coordinate state (AdaGrad accumulators, FTRL ``z`` and ``n``),
so a push updates only the coordinates it names. The update rule is an
``optim`` transform applied to the touched coordinates, or ``"add"`` (values
accumulate, as in ps-lite's default handle). Pushes to one shard are serialised
by a lock: the server's state is consistent; the *workers'* view may be stale,
which is what the consistency models bound.

``Clock`` keeps each worker's clock (iterations completed) and answers
"wait until the slowest worker has reached c" with a future, which the
transport completes when the condition holds (SSP, Ho et al., "More Effective
Distributed ML via a Stale Synchronous Parallel Parameter Server", NIPS 2013;
BSP is staleness 0, ASP never waits). It records every grant.

>>> import numpy as np
>>> s = Shard(5, rule="add")
>>> s.push(np.array([1, 3]), np.array([2.0, 5.0])); s.push(np.array([1]), np.array([2.0]))
>>> s.pull(np.array([1, 3, 0])).tolist()
[4.0, 5.0, 0.0]
>>> a = Shard(3, rule="adagrad", learning_rate=0.1)
>>> a.push(np.array([2]), np.array([1.0])); a.pull(np.array([0, 2])).round(4).tolist()
[0.0, -0.1]
"""
from __future__ import annotations

import threading

import numpy as np

from shardlearn.core.errors import ConfigError


def sum_by_key(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(distinct keys, sum of their values)``: how repeated keys in pushes are combined
    (``values`` one per key, or one row per key: summed column by column)."""
    keys, values = np.asarray(keys, dtype=np.int64), np.asarray(values, dtype=np.float64)
    if keys.size < 2 or bool(np.all(keys[1:] > keys[:-1])):  # distinct and sorted already (a batch's keys)
        return keys, values
    uniq, inv = np.unique(keys, return_inverse=True)
    if values.ndim == 2:
        return uniq, np.stack([np.bincount(inv, weights=c, minlength=uniq.size) for c in values.T], axis=1)
    return uniq, np.bincount(inv, weights=values, minlength=uniq.size)


def _slice(state, idx, size):
    """The part of a per-coordinate state at ``idx`` (full-size leaves sliced, scalars kept)."""
    if isinstance(state, dict):
        return {k: _slice(v, idx, size) for k, v in state.items()}
    if isinstance(state, tuple):
        parts = [_slice(p, idx, size) for p in state]
        return type(state)(*parts) if hasattr(state, "_fields") else tuple(parts)
    arr = np.asarray(state)
    return arr[idx] if arr.ndim and arr.shape[0] == size else arr


def _scatter(full, part, idx, size):
    """Write ``part`` back into ``full`` at ``idx``; returns the new full state."""
    if isinstance(full, dict):
        return {k: _scatter(full[k], part[k], idx, size) for k in full}
    if isinstance(full, tuple):
        parts = [_scatter(f, p, idx, size) for f, p in zip(full, part)]
        return type(full)(*parts) if hasattr(full, "_fields") else tuple(parts)
    arr = np.asarray(full)
    if arr.ndim and arr.shape[0] == size:
        arr[idx] = part
        return arr
    return np.asarray(part)


class Shard:
    """One slice of ``size`` parameters with its update rule (``"add"`` or an optimizer name).

    ``l1``/``l2`` are the penalty strengths (``alpha * l1_ratio``, ``alpha * (1 - l1_ratio)``);
    ``free`` names local indices never penalised (the intercept's key). With a preconditioner
    (``precondition``, from the second moments workers pushed with ``add_stats``) the shard
    stores ``v = w * s`` and runs its rule in those coordinates, exactly as the collective
    strategies do in theirs, while pushes and pulls keep speaking ``w``: a push of ``g_w`` is
    ``g_v = g_w / s``, and the penalties become ``l1 / s_j`` and ``l2 / s_j^2``."""

    def __init__(self, size: int, rule: str = "adagrad", learning_rate: float = 0.1, l1: float = 0.0,
                 l2: float = 0.0, dtype="float64", free=(), schedule: str = "constant"):
        self.size, self.rule, self.learning_rate, self.schedule = int(size), rule, learning_rate, schedule
        self.l1, self.l2 = float(l1), float(l2)
        self.free = np.asarray(free, dtype=np.int64)
        self.values = np.zeros(self.size, dtype=np.dtype(dtype))
        self.scale = None  # None: identity
        self.stats = None  # second moments pushed by the workers, until ``precondition``
        self.lock = threading.Lock()
        self.pushes = 0
        self.held: dict = {}  # clock -> pushes waiting for the rest of that clock (bsp)
        if rule != "add":
            from shardlearn import optim

            if rule not in optim.OPTIMIZERS:
                raise ConfigError(f"server rule {rule!r}: expected 'add' or one of {', '.join(optim.OPTIMIZERS)}")
        self._init_rule()

    def _strengths(self):
        """Per-coordinate strengths where the scale or a free key needs them, else scalars."""
        if not (self.l1 or self.l2) or (self.scale is None and not self.free.size):
            return self.l1, self.l2
        inv = np.ones(self.size) if self.scale is None else 1.0 / self.scale
        l1, l2 = self.l1 * inv, self.l2 * inv * inv
        l1[self.free] = l2[self.free] = 0.0
        return {"w": l1}, {"w": l2}

    def _init_rule(self) -> None:
        if self.rule == "add":
            self.opt = self.state = None
            return
        from shardlearn import optim

        l1, l2 = self._strengths()
        lr = optim.SCHEDULES[self.schedule](self.learning_rate)  # counts this shard's updates (one per clock in bsp)
        self.opt = optim.make(self.rule, lr, l1=l1, l2=l2)
        self.state = self.opt.init({"w": np.zeros(self.size)})

    def add_stats(self, idx: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> None:
        """Add workers' weighted sums of ``x^2`` and of rows present at local ``idx`` (before training)."""
        with self.lock:
            if self.stats is None:
                self.stats = np.zeros((2, self.size))
            np.add.at(self.stats[0], idx, sums)
            np.add.at(self.stats[1], idx, counts)

    def precondition(self, curvature: float, ridge: float) -> None:
        """Scale by the RMS of each key where present (``precond.where_present``, the collective
        strategies' stochastic scale), 1 for free keys; restarts the rule."""
        from shardlearn.optim.scaling import where_present

        with self.lock:
            stats, self.stats = (np.zeros((2, self.size)) if self.stats is None else self.stats), None
        self.use_scale(where_present(stats[0], stats[1], curvature, ridge))

    def use_scale(self, scale: np.ndarray) -> None:
        """Precondition with a given scale (1 is forced at free keys); restarts from zero."""
        with self.lock:
            scale = np.array(scale, dtype=np.float64)
            scale[self.free] = 1.0
            self.scale = scale
            self.values[:] = 0.0
            self._init_rule()

    def push(self, idx: np.ndarray, grads: np.ndarray, clock: int | None = None, expect: int = 1) -> None:
        """Apply a push: ``idx`` distinct local indices, ``grads`` their values. With ``clock``
        (bsp), pushes are held until ``expect`` pushes of that clock arrived, then their sum is
        applied as one update, so every worker's step-t pull saw none of step t's pushes and
        the optimizer steps once per clock on the summed gradient (as allreduce bsp does)."""
        with self.lock:
            self.pushes += 1
            if clock is None:
                self._arrived(idx, grads)
                return
            held = self.held.setdefault(clock, [])
            held.append((idx, grads))
            if len(held) < expect:
                return
            del self.held[clock]
            self._apply_held(held)

    def _arrived(self, idx, grads) -> None:
        """A push with no clock, applied as it arrives."""
        self._apply(idx, grads)

    def _apply_held(self, held) -> None:
        """A clock's pushes, summed by key, as one update."""
        uniq, sums = sum_by_key(np.concatenate([i for i, _ in held]), np.concatenate([g for _, g in held]))
        if uniq.size:
            self._apply(uniq, sums)

    def _apply(self, idx, grads) -> None:
        if self.opt is None:
            self.values[idx] += grads.astype(self.values.dtype, copy=False)
            return
        g = np.asarray(grads, dtype=np.float64)
        if self.scale is not None:
            g = g / self.scale[idx]
        v = self.values[idx].astype(np.float64)
        part = _slice(self.state, idx, self.size)
        updates, part = self.opt.update({"w": g}, part, {"w": v})
        self.values[idx] = v + updates["w"]
        self.state = _scatter(self.state, part, idx, self.size)

    def pull(self, idx: np.ndarray) -> np.ndarray:
        with self.lock:
            v = self.values[idx].astype(np.float64)
            return v if self.scale is None else v / self.scale[idx]

    def weights(self) -> np.ndarray:
        """The slice in the model's own coordinates ``w`` (the stored dtype)."""
        if self.scale is None:
            return self.values
        return (self.values / self.scale).astype(self.values.dtype)

    def arrays(self) -> dict:
        """The slice and its optimizer state, as plain arrays (checkpoints, final model)."""
        from shardlearn.core.tree import pack_state

        with self.lock:
            out = {"values": self.values}
            if self.scale is not None:
                out["scale"] = self.scale
            if self.state is not None:
                out.update(pack_state("opt", self.state))
            return out


class Clock:
    """Clocks of ``n_workers`` workers; ``wait_min(target, done)`` calls ``done(min_clock)``
    once every worker's clock is at least ``target`` (at once if it already is)."""

    def __init__(self, n_workers: int):
        self.clocks = np.zeros(n_workers, dtype=np.int64)
        self.lock = threading.Lock()
        self.waiting: list = []
        self.grants: list[tuple[int, int, int]] = []  # (worker, target, slowest clock when granted)

    def tick(self, worker: int) -> None:
        with self.lock:
            self.clocks[worker] += 1
            low = int(self.clocks.min())
            ready = [w for w in self.waiting if w[1] <= low]
            self.waiting = [w for w in self.waiting if w[1] > low]
            for worker_id, target, _ in ready:
                self.grants.append((worker_id, target, low))
        for _, _, done in ready:
            done(low)

    def wait_min(self, worker: int, target: int, done) -> None:
        with self.lock:
            low = int(self.clocks.min())
            if low < target:
                self.waiting.append((worker, target, done))
                return
            self.grants.append((worker, target, low))
        done(low)
