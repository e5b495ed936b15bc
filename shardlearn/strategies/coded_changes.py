"""Per-example ``bsp``'s merge of changes through a quantizer (``compression="int8"``,
``"fp16"``, ``"bf16"``): what ``strategies.online`` sends instead of float64 rows.

Every ``sync_rows`` rows a worker sends, for each coordinate its rows touched, the change of
the kernel's state (``kernels.delta``): the weight and the adaptive sum as differences
(FTRL's ``z`` too), the scale and the penalty clock as values. Here the additive columns go
through the codec with error feedback kept per coordinate (what a merge left out of
coordinate j is added to j's next change: Seide et al. 2014; Karimireddy et al. 2019), the
keys travel as int32 (ordered by the size of their weight change, so int8's blocks of 512
values share a scale with values of their size; under the normalized rule the codec sees a
weight's change times its scale and an adaptive sum's over its square: ``delta.columns``),
the scale and the clock as float32 offsets
from their smallest value in the merge (``comm/rows.py``). Each worker then puts back the
state it started from and merges every worker's *decoded* change, its own included, so the
replicas stay identical, and nothing a worker learned is lost: its applied changes plus its
residuals sum to its exact changes. An adaptive sum never goes below zero (a decoded
difference may undershoot). Keys as int32: models under 2^31 features.

A touched coordinate costs 4 + 4 + 4 bytes of key, scale and clock plus the codec's width for
each additive column (int8: 1 byte and a float32 scale per 512 values), against 40 uncoded
(``5 x float64``): 2.8x fewer bytes with int8, 2.5x with fp16 or bf16. Sparsifiers and
``sign`` are refused (``runtime.config``): a change is sparse already, and the sign of an
adaptive sum's difference is always +.

>>> import numpy as np
>>> from shardlearn.comm import codecs
>>> c = Coded(codecs.parse("int8"), d=4, opts=dict(rule="normalized", lr=0.5))
>>> c.bytes_per_row(1000)
14
"""
from __future__ import annotations

import numpy as np

from shardlearn.comm import codecs, rows
from shardlearn.kernels import delta
from shardlearn.kernels.sgd import G

HEAD = 3  # float64: rows, the change of the scalars [t, N]


def taken(comm, state, keys, before, rule, width=None) -> tuple:
    """``(change, scalars' change, width)`` of a worker's rows since ``before``, its state put
    back to ``before`` for the merge; ``width`` agreed (the widest change) when None: 0 when
    nobody learned from a row. What both merges (plain and coded) start from."""
    ws, scalars = state["ws"], state["scalars"]
    rows_before, s0 = before
    ch = delta.change(rows_before, ws[keys], rule)
    dscal = scalars - s0
    ws[keys], scalars[:] = rows_before, s0
    if width is None:
        width = int(comm.allreduce(np.array([float(keys.size)]), op="max")[0])
    return ch, dscal, width


def next_room(sizes) -> int:
    """The rows a merge's allgather carries after one whose changes had ``sizes`` rows: a quarter
    above the widest (the same on every worker, which all saw the same sizes).

    >>> next_room([2700, 2650])
    3383
    """
    return max(sizes) + max(sizes) // 4 + 8


def apply(state, parts, opts) -> int:
    """Every worker's change ``(keys, rows, scalars' change)`` of ``parts`` merged into
    ``state`` in order, each key first brought up to date with the penalty at the exchange's
    start (``state``'s clock before the merge), as every worker did before learning
    (``online._before``): so the decay of the rows before the exchange is taken once, not
    once per worker whose rows touched the key. Returns the widest change."""
    for keys, _, _ in parts:
        delta.start(state, keys, opts)
    for keys, rows_, dscal in parts:
        delta.merge(state["ws"], keys, rows_, opts["rule"])
        state["scalars"] += dscal
    return max(keys.size for keys, _, _ in parts)


class Coded:
    """The codec's state for one worker's merges: a residual per coordinate (the intercept
    last) for each additive column (under the normalized rule a weight's times its scale,
    ``delta.columns``), and the count of merges (the stochastic rounding's draw)."""

    def __init__(self, codec: codecs.Codec, d: int, opts: dict):
        self.codec, self.opts, self.rule = codec, opts, opts["rule"]
        # additive: through the codec (in scale-free units under the normalized rule); maxima: as float32
        self.coded, self.plain, self.units = delta.columns(self.rule)
        self.residual = np.zeros((d + 1, len(self.coded)))
        self.step = 0

    def bytes_per_row(self, width: int) -> int:
        """Bytes a touched coordinate costs on the wire (``width``-row merges, the header shared)."""
        return int(round(4 + rows.nbytes(self.codec, width, len(self.coded), len(self.plain)) / max(width, 1)))

    def message_bytes(self, width: int) -> int:
        """What one worker's part of a ``width``-row merge weighs: the header and keys, the payload."""
        return 8 * (HEAD + width // 2 + 1) + rows.nbytes(self.codec, width, len(self.coded), len(self.plain))

    def merge(self, comm, state, keys, before, width=None, room=None) -> int:
        """Like ``online._merge_changes``, through the codec; returns the widest change. ``room``
        as there: the payloads sized to it, not to ``width``; when a change is wider, every
        worker sends its payload again, sized to the widest (an encoding's rows do not depend
        on its padding: int8's draws fill in order), and only that encoding's residual is kept."""
        ws = state["ws"]
        ch, dscal, width = taken(comm, state, keys, before, self.rule, width)
        if width == 0:
            return 0
        w = width if room is None else min(room[0], width)
        feedback = self.codec.error_feedback
        sent = self._message(ch, keys, dscal, w, comm.rank)
        parts = comm.allgather(sent[0])
        sizes = [int(p[:8].view(np.float64)[0]) for p in parts]
        if max(sizes) > w:  # a change wider than the room: everyone again, at the widest
            w = max(sizes)
            sent = self._message(ch, keys, dscal, w, comm.rank)
            parts = comm.allgather(sent[0])
        if feedback:
            self.residual[keys] = sent[1]
        if room is not None:
            room[0] = next_room(sizes)
        at = 8 * (HEAD + w // 2 + 1)
        decoded = []
        for part in parts:
            h = part[:at].view(np.float64)
            m = int(h[0])
            pk = h[HEAD:].view(np.int32)[:m].astype(np.int64)
            decoded.append((pk, rows.decode(self.codec, part[at:], m, 4, self.coded, self.plain, self.step, w,
                                            self.units), h[1:3]))
        widest = apply(state, decoded, self.opts)
        self.step += 1
        hit = np.concatenate([pk for pk, _, _ in decoded])
        ws[hit, G] = np.maximum(ws[hit, G], 0.0)
        return widest

    def _message(self, ch, keys, dscal, w: int, rank: int) -> tuple:
        """``(message, residual of the keys)`` of a worker's change for a ``w``-row merge: the
        header (rows, the scalars' change, the keys as int32) and the payload; a change wider
        than ``w`` sends its header only (its row count says so) and a payload of zeros."""
        k = keys.size
        head = np.zeros(HEAD + w // 2 + 1)  # float64: rows, the scalars' change, then the keys as int32
        head[:HEAD] = [k, dscal[0], dscal[1]]
        if k > w:
            return np.concatenate([head.view(np.uint8), np.zeros(rows.nbytes(self.codec, w, len(self.coded),
                                                                              len(self.plain)), np.uint8)]), None
        order, payload, left = rows.encode(self.codec, ch, self.coded, self.plain,
                                           self.residual[keys] if self.codec.error_feedback else None, self.step,
                                           rank, w, units=self.units)
        head[HEAD:].view(np.int32)[:k] = keys[order]
        return np.concatenate([head.view(np.uint8), payload]), left

    def arrays(self) -> dict:
        """What a checkpoint keeps: the residuals and the merge count."""
        out = {"codec/rows_residual": self.residual, "codec/rows_step": np.array(self.step)}
        return out

    def restore(self, arrays) -> None:
        if "codec/rows_residual" in arrays:
            self.residual = np.array(arrays["codec/rows_residual"], dtype=np.float64)
            self.step = int(arrays["codec/rows_step"])
