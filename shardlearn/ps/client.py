"""The worker's side of the parameter server, in the spirit of ps-lite: ``push``
and ``pull`` name only the keys a batch touches and return a handle at once;
``wait(handle)`` blocks until that request is done (and returns pulled values).
Keys are routed to shards by the slicer; repeated keys in a push are summed.

>>> # with a running group: c = Client(transport, RangeSlicer(10, 2), hosts=[0, 1], worker=0)
>>> # c.wait(c.push(np.array([3, 7]), np.array([1.0, 2.0]))); c.wait(c.pull(np.array([7, 3])))
"""
from __future__ import annotations

import numpy as np

from shardlearn.comm import codecs, rows
from shardlearn.ps import host, kernel_shard
from shardlearn.ps.server import sum_by_key
from shardlearn.ps.slicer import count, group


class Handle:
    def __init__(self, kind, parts, n=0, packed=()):
        self.kind, self.parts, self.n = kind, parts, n  # parts: [(future, positions)]
        self.packed = list(packed) or [False] * len(parts)  # by part: kernel rows as ``kernel_shard.packed`` bytes


class Client:
    def __init__(self, transport, slicer, hosts: list[int], worker: int, codec=None, columns=None, whole=(),
                 near=()):
        """``hosts[s]``: the rank hosting shard ``s``; the clock lives with shard 0. ``near``: the
        shards this process reaches in place besides its own (``host.attach``: mapped from this
        machine's shared memory), whose calls run here like its own shard's. ``codec``:
        a quantizer (``comm.codecs``: fp16, bf16, int8, sign) the pushed values go through,
        with error feedback per key: what a push of a key leaves out is added to that key's
        next push (the residuals live here, one per key of the model). ``columns``: pushes are
        change rows (``(coded, plain, units)`` as ``kernels.delta.columns`` gives them, ``comm/rows.py``): the additive columns
        through the codec, the others as float32, the rows' order sent beside them; the rows of
        the keys in ``whole`` (counters, not changes of a weight) as float64. Such a client
        pulls the kernel state packed too (``kernel_shard.packed``, float32 weights, sums and
        scales; clocks and counters whole) from the shards of other processes (its own
        process's answer in place, exact), in ``push_pull`` (asp's and ssp's step) and in
        ``pull`` (bsp's). ``columns`` may name the units the codec sees the additive columns
        and keeps their residuals in (``kernels.delta.columns``: the normalized rule's scale)."""
        self.transport, self.slicer, self.hosts, self.worker = transport, slicer, list(hosts), worker
        self.keys_pushed = self.keys_pulled = self.keys_elided = 0
        self.cached: dict = {}  # shard -> the local keys it last answered in a push_pull
        self.codec, self.residual, self.coded = codec, None, None if codec is None else \
            codecs.init(codec._replace(error_feedback=False), 0)
        self.columns = None if columns is None else (list(columns[0]), list(columns[1]), columns[2])
        self.packs = codec is not None and columns is not None
        self.rank = getattr(transport, "rank", None)  # this process's rank: its shards answer here
        self.whole = np.asarray(whole, dtype=np.int64)
        near = set(near)
        self.dest = [self.rank if s in near else h for s, h in enumerate(self.hosts)]  # who runs a call to s

    def _route(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(shard, local index)`` of each key, the local indices as int32 where the model has
        fewer than 2^31 keys (4 bytes a key on the wire instead of 8; a packed kernel row is 20)."""
        shard, local = self.slicer.route(keys)
        return shard, local.astype(np.int32) if self.slicer.n_keys < 2**31 else local

    def _remote_first(self, parts: list) -> list:
        """``parts`` (shards, or ``(shard, ...)`` tuples) with this process's own shards last: a call
        to one runs here at once (``comm.rpc``), so the others' requests are sent before it and
        travel meanwhile. Sent first, worker 0's call to its own shard 0 held back its request to
        shard 1 by the merge and pull: worker 0 waited on its answers twice as long as worker 1
        (0.52 s against 0.26 s over 2 epochs of D2's 2M rows under asp, by hand; ~0.25 s both after)."""
        def own(p):
            return self.dest[p if isinstance(p, (int, np.integer)) else p[0]] == self.rank

        return [p for p in parts if not own(p)] + [p for p in parts if own(p)]

    def arrays(self) -> dict:
        """The coded pushes' state as checkpoint arrays: the per-key residuals and the encodings'
        step (the stochastic rounding follows it); empty without a codec."""
        if self.codec is None:
            return {}
        out = {"codec/step": self.coded.step}
        if self.residual is not None:
            out["codec/residual"] = self.residual
        return out

    def restore(self, arrays) -> None:
        """Continue from ``arrays()`` saved by a checkpoint (nothing when it has none)."""
        if self.codec is not None and "codec/step" in arrays:
            self.coded = self.coded._replace(step=np.array(arrays["codec/step"], dtype=np.int64))
            if "codec/residual" in arrays:
                self.residual = np.array(arrays["codec/residual"], dtype=np.float64)

    def _send(self, keys: np.ndarray, vals: np.ndarray) -> tuple:
        """What a push of ``vals`` for global ``keys`` sends: ``(values,)`` plain, or, coded,
        ``(spec, payload, shape)`` with the residual of the keys updated."""
        if self.codec is None:
            return (vals,)
        c = self.codec
        if self.columns is not None:
            return self._send_rows(keys, vals)
        if c.error_feedback:
            if self.residual is None:
                self.residual = np.zeros((self.slicer.n_keys,) + vals.shape[1:])
            vals = vals + self.residual[keys]
        flat = np.ascontiguousarray(vals, dtype=np.float64).ravel()
        payload, self.coded = codecs.encode(c._replace(error_feedback=False), flat, self.coded, rank=self.worker)
        if c.error_feedback:
            self.residual[keys] = vals - codecs.decode(c, payload, flat.size, 0).reshape(vals.shape)
        return c.spec, payload, vals.shape

    def _send_rows(self, keys: np.ndarray, vals: np.ndarray) -> tuple:
        """``(spec, payload, shape, columns, order)`` of change rows through the codec."""
        coded, plain, units = self.columns
        feedback = self.codec.error_feedback
        if feedback and self.residual is None:
            self.residual = np.zeros((self.slicer.n_keys, len(coded)))
        step = int(self.coded.step)
        order, payload, left = rows.encode(self.codec, np.asarray(vals, dtype=np.float64), coded, plain,
                                           self.residual[keys] if feedback else None, step, self.worker,
                                           exact=np.isin(keys, self.whole), units=units)
        if feedback:
            self.residual[keys] = left
        self.coded = self.coded._replace(step=np.array(step + 1, dtype=np.int64))
        small = order.astype(np.uint16 if vals.shape[0] <= 1 << 16 else np.int32)
        return self.codec.spec, payload, vals.shape, self.columns, small

    def push(self, keys: np.ndarray, values: np.ndarray, clock: int | None = None, expect: int = 1,
             at=None) -> Handle:
        """Send ``values`` (one per key, or a row per key) for ``keys``. With ``clock`` (bsp) every shard gets a push, empty if
        none of the keys is its own, and applies the sum once ``expect`` workers pushed that clock. ``at``: kernel
        changes learned from rows brought up to date at these scalars ``[t, N]`` (``ps.kernel_shard``), or None."""
        uniq, vals = sum_by_key(keys, values)
        shard, local = self._route(uniq)
        routed = group(shard, len(self.hosts))
        if clock is not None:
            have = {s for s, _ in routed}
            routed += [(s, np.zeros(0, dtype=np.int64)) for s in range(len(self.hosts)) if s not in have]
        routed = self._remote_first(routed)
        fn = host.push if self.codec is None else host.push_coded
        parts = [(self.transport.call(self.dest[s], fn, int(s), local[pos], *self._send(uniq[pos], vals[pos]), clock,
                                      expect, at), None) for s, pos in routed]
        self.keys_pushed += uniq.size
        return Handle("push", parts)

    def push_stats(self, keys: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> Handle:
        """Send this worker's per-key sums of ``x^2`` and of rows present (the preconditioner's moments)."""
        uniq, vals = sum_by_key(keys, sums)
        _, cnts = sum_by_key(keys, counts)
        shard, local = self._route(uniq)
        parts = [(self.transport.call(self.dest[s], host.add_stats, int(s), local[pos], vals[pos], cnts[pos]), None)
                 for s, pos in group(shard, len(self.hosts))]
        return Handle("push", parts)

    def push_pull(self, push_keys: np.ndarray, values: np.ndarray, pull_keys: np.ndarray, at=None) -> Handle:
        """A push and the next pull in one request per shard: each shard applies the push, then
        answers the pull (so the pull sees the push). ``wait`` returns the pulled values. Key
        caching (ps-lite's): a shard remembers the keys it last answered this worker in a
        ``push_pull``, and a push for exactly those keys (a batch's change after its pull) goes
        without them; ``keys_elided`` counts the keys not sent. ``at``: as ``push``'s."""
        uniq, vals = sum_by_key(push_keys, values)
        push_shard, push_local = self._route(uniq)
        pull_keys = np.asarray(pull_keys, dtype=np.int64)
        pull_shard, pull_local = self._route(pull_keys)
        pushes, pulls = dict(group(push_shard, len(self.hosts))), dict(group(pull_shard, len(self.hosts)))
        none = np.zeros(0, dtype=np.int64)
        parts, packed = [], []
        for s in self._remote_first(sorted(set(pushes) | set(pulls))):
            out, back = pushes.get(s, none), pulls.get(s, none)
            idx = push_local[out]
            same = s in self.cached and np.array_equal(self.cached[s], idx)  # what this shard last sent us
            self.cached[s] = pull_local[back]
            fn = host.push_pull if self.codec is None else host.push_pull_coded
            packed.append(self.packs and self.dest[s] != self.rank)
            parts.append((self.transport.call(self.dest[s], fn, int(s), None if same else idx,
                                              *self._send(uniq[out], vals[out]), pull_local[back], self.worker,
                                              at, packed[-1]), back))
            self.keys_elided += idx.size if same else 0
        self.keys_pushed += uniq.size
        self.keys_pulled += pull_keys.size
        return Handle("pull", parts, pull_keys.size, packed)

    def pull(self, keys: np.ndarray) -> Handle:
        keys = np.asarray(keys, dtype=np.int64)
        shard, local = self._route(keys)
        routed = self._remote_first(group(shard, len(self.hosts)))
        packed = [self.packs and self.dest[s] != self.rank for s, _ in routed]
        parts = [(self.transport.call(self.dest[s], host.pull, int(s), local[pos], pk), pos)
                 for (s, pos), pk in zip(routed, packed)]
        self.keys_pulled += keys.size
        return Handle("pull", parts, keys.size, packed)

    def wait(self, handle: Handle):
        if handle.kind == "push":
            for fut, _ in handle.parts:
                self.transport.wait(fut)
            return None
        out = None
        for (fut, pos), packed in zip(handle.parts, handle.packed):
            part = self.transport.wait(fut)
            if packed:
                part = kernel_shard.unpacked(part, count(pos))
            if out is None:  # a value per key, or a row per key (the per-example kernel's state)
                out = np.empty((handle.n,) + np.shape(part)[1:])
            out[pos] = part
        return np.empty(0) if out is None else out

    # --- the clock (consistency) ---------------------------------------------
    def tick(self, wait: bool = True):
        """This worker finished a clock; ``wait=False``: returns a handle instead of waiting."""
        fut = self.transport.call(self.hosts[0], host.tick, self.worker)
        if not wait:
            return Handle("push", [(fut, None)])
        self.transport.wait(fut)

    def wait_min(self, target: int) -> int:
        """Block until every worker's clock is >= ``target``; the slowest clock then."""
        return int(self.transport.wait(self.transport.call(self.hosts[0], host.wait_min, self.worker, target)))
