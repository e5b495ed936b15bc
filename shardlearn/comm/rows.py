"""Rows of per-key changes through a codec: what per-example ``bsp`` merges
(``strategies/coded_changes.py``) and the parameter server's per-example pushes
(``ps/client.py``) send instead of float64 rows.

A change row holds some *additive* columns (differences: a weight's, an adaptive sum's),
which go through the codec (``comm.codecs``) with error feedback per row, and some *plain*
columns (sent as they are: a scale, merged by its maximum; a penalty clock's advance, added),
which travel as float32 after subtracting the column's smallest value (a float64 offset in
the payload), so a value that has run past 2^24 (FTRL's clock) stays exact within a batch. Before coding, the rows are ordered by the
size of the first additive column (plus its residual), so int8's blocks of 512 values share
a scale with values of their own size (a rare key's small change is not rounded against a
frequent key's large one); the caller sends that order (as the keys, or as a permutation).
With ``units`` the additive columns are coded times a power of a plain column (the
normalized rule's scale: a weight times it, an adaptive sum over its square), so values of
features whose raw magnitudes differ by orders share a block as well.
Rows unlike the rest (a worker's counters of weight seen, pushed beside its keys' changes)
can be sent whole as float64: one such row would set the first block's scale.

>>> import numpy as np
>>> from shardlearn.comm import codecs
>>> c = codecs.parse("fp16")
>>> rows = np.array([[0.5, 1.0, 2.0, 7.0], [-2.0, 0.25, 1.0, 9.0]])
>>> order, payload, residual = encode(c, rows, [0, 1], [2, 3], np.zeros((2, 2)), step=0, rank=0)
>>> order.tolist(), payload.size == nbytes(c, 2, 2, 2)
([1, 0], True)
>>> decode(c, payload, 2, 4, [0, 1], [2, 3], step=0).tolist()  # in the payload's order
[[-2.0, 0.25, 1.0, 9.0], [0.5, 1.0, 2.0, 7.0]]
"""
from __future__ import annotations

import numpy as np

from shardlearn.comm import codecs


def nbytes(codec: codecs.Codec, width: int, n_coded: int, n_plain: int) -> int:
    """The payload's size for ``width`` rows (the same on every worker for a given width), none
    of them exact."""
    return 8 + n_coded * codecs.payload_bytes(codec, width) + n_plain * (8 + 4 * width)


def _factors(scales: np.ndarray, powers: list) -> np.ndarray:
    """``(k, len(powers))``: each row's scale (1 where it has none) to each power."""
    s = np.where(scales > 0, scales, 1.0)
    return np.column_stack([s**p for p in powers])


def encode(codec: codecs.Codec, rows: np.ndarray, coded: list, plain: list, residual: np.ndarray | None,
           step: int, rank: int, width: int | None = None,
           exact: np.ndarray | None = None, units=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(order, payload, residual')``: the rows' order in the payload, the payload (uint8,
    ``nbytes`` for ``width`` rows, padded with zero rows beyond ``len(rows)``), and the new
    residual of each row (in the rows' own order; None without error feedback). ``residual``:
    ``(len(rows), len(coded))``, what earlier encodings of these rows left out. ``exact``: a
    mask of rows sent whole as float64, first (counters unlike the rest, which would set a
    block's scale); their residual stays as it was. ``units``: ``(plain column, coded powers,
    kept powers)`` (``kernels.delta.columns``): the additive columns coded times the row's value
    in that column (as the decoder will read it: float32 from the smallest) to the coded powers,
    and their residuals, given and returned, times it to the kept powers."""
    exact = np.zeros(rows.shape[0], dtype=bool) if exact is None else np.asarray(exact, dtype=bool)
    whole = np.flatnonzero(exact)
    rest = np.flatnonzero(~exact)
    k = rest.size
    width = k if width is None else width - whole.size
    feedback = codec.error_feedback and residual is not None
    factor, kept = None, 1.0  # each row's factor of the coded and the kept units, where there are units
    if units is not None and k:
        col = rows[rest, units[0]]
        base = float(col.min())
        scale = (col - base).astype(np.float32).astype(np.float64) + base
        factor, kept = _factors(scale, units[1]), _factors(scale, units[2])
    x = rows[rest][:, coded] + residual[rest] / kept if feedback else rows[rest][:, coded]
    if factor is not None:
        x = x * factor
    sort = np.argsort(-np.abs(x[:, 0]), kind="stable") if coded and k else np.arange(k)
    order = np.concatenate([whole, rest[sort]])
    x = x[sort]
    parts = [np.frombuffer(np.float64(whole.size).tobytes(), dtype=np.uint8),
             np.frombuffer(np.ascontiguousarray(rows[whole], dtype=np.float64).tobytes(), dtype=np.uint8)]
    left = np.zeros_like(x) if feedback else None
    plain_codec = codec._replace(error_feedback=False)
    for i in range(len(coded)):
        v = np.zeros(width)
        v[:k] = x[:, i]
        payload, _ = codecs.encode(plain_codec, v, codecs.CodecState(np.zeros(0), np.array(step)), rank=rank,
                                   stream=i + 1)
        if feedback:
            left[:, i] = x[:, i] - codecs.decode(codec, payload, width, step, i + 1)[:k]
        parts.append(payload)
    for c in plain:
        col = rows[rest[sort], c]
        base = float(col.min()) if k else 0.0
        vals = np.zeros(width, dtype=np.float32)
        vals[:k] = col - base
        parts.append(np.frombuffer(np.float64(base).tobytes() + vals.tobytes(), dtype=np.uint8))
    out_residual = None
    if feedback:
        out_residual = np.array(residual, dtype=np.float64)
        out_residual[rest[sort]] = left if factor is None else left / factor[sort] * kept[sort]
    return order, np.concatenate(parts), out_residual


def decode(codec: codecs.Codec, payload: np.ndarray, k: int, n_cols: int, coded: list, plain: list, step: int,
           width: int | None = None, units=None) -> np.ndarray:
    """The ``k`` rows (``n_cols`` wide, other columns zero) a payload stands for, in its order
    (``units`` as ``encode`` was given)."""
    m = int(payload[:8].view(np.float64)[0])  # rows sent whole, first
    out = np.zeros((k, n_cols))
    out[:m] = payload[8 : 8 + 8 * m * n_cols].view(np.float64).reshape(m, n_cols)
    at = 8 + 8 * m * n_cols
    width = (k if width is None else width) - m
    size = codecs.payload_bytes(codec, width)
    for i, c in enumerate(coded):
        out[m:, c] = codecs.decode(codec, payload[at : at + size], width, step, i + 1)[: k - m]
        at += size
    for c in plain:
        base = float(payload[at : at + 8].view(np.float64)[0])
        out[m:, c] = payload[at + 8 : at + 8 + 4 * (k - m)].view(np.float32).astype(np.float64) + base
        at += 8 + 4 * width
    if units is not None and k > m:
        out[m:, coded] /= _factors(out[m:, units[0]], units[1])
    return out
