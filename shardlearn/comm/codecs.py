"""Gradient codecs: what a worker sends instead of its float64 vector, as pure functions
over plain arrays, with error feedback kept as the codec's own state.

A spec is at most one *sparsifier* then at most one *quantizer*, joined by ``+``:

- sparsifiers: ``topk:F`` (the ``ceil(F n)`` largest magnitudes, Aji & Heafield 2017,
  Stich et al. 2018; their positions travel in the cheaper of a bitmap of ``n`` bits and
  a list of 16-bit (``n <= 65536``) or 32-bit indices: ``index_bytes``) and ``randk:F`` (coordinates drawn from a
  seed shared by every worker and the step, so no index travels: BytePS's random-k);
- quantizers: ``fp16`` (clipped to +-65504), ``bf16`` (round to nearest even), ``int8``
  (a float32 scale per block of 512 values, stochastic rounding: QSGD, Alistarh et al.
  2017), ``sign`` (one bit per value and a bf16 scale per block of 512, the block's
  ``||x||_1 / n``: scaled signSGD, Karimireddy et al. 2019, blockwise so that a block of
  zeros, as most of a wide sparse model's change is, decodes to zeros; the scale in bf16,
  float32's range in 2 bytes, since in a small chunk it was most of the payload: a 101-wide
  model's chunk of 26 values at 4 workers sent 4 bytes of signs and 4 of scale, and error
  feedback carries the scale's rounding, 2^-8 at most, into the next step);
- ``powersgd:R``: a rank-R approximation of each matrix-shaped gradient (a softmax's
  weights), by one step of subspace iteration over two allreduces (``comm/powersgd.py``);
  alone, not composed;
- ``none``: no codec (the caller's plain allreduce runs, bit for bit).

Error feedback (Seide et al. 2014, "1-bit SGD"; Karimireddy et al. 2019, "Error
Feedback Fixes SignSGD"): the worker compresses ``v + e`` and keeps ``e' = v + e -
decode(encode(v + e))``, so what a step leaves out is sent later. It is on for every
lossy codec unless ``error_feedback=False``.

Each encoding has a size fixed by the vector's length (``payload_bytes``), so the
workers can exchange payloads with one allgather.

>>> import numpy as np
>>> c = parse("topk:0.5+int8")
>>> v = np.array([4.0, -0.1, 0.2, -3.0])
>>> payload, state = encode(c, v, init(c, 4), rank=0)
>>> payload.nbytes == payload_bytes(c, 4), np.round(decode(c, payload, 4, step=0), 1).tolist()
(True, [4.0, 0.0, 0.0, -3.0])
>>> (np.round(state.residual, 1) + 0.0).tolist()  # what was left out, sent at a later step
[0.0, -0.1, 0.2, 0.0]
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from shardlearn.core.errors import ConfigError

SPARSIFIERS = ("topk", "randk")
QUANTIZERS = ("fp16", "bf16", "int8", "sign")
BLOCK = 512  # values sharing one scale under int8 (float32) and sign (bf16)
FP16_MAX = 65504.0
# bytes per kept value (float64 when no quantizer follows a sparsifier)
VALUE_BYTES = {None: 8, "fp16": 2, "bf16": 2, "int8": 1}


class Codec(NamedTuple):
    spec: str
    sparsifier: str | None  # "topk" | "randk" | None
    fraction: float  # the sparsifier's share of coordinates kept (1.0 without one)
    quantizer: str | None  # one of QUANTIZERS | None
    error_feedback: bool
    seed: int
    rank: int = 0  # powersgd:R's rank (0: not PowerSGD; ``comm/powersgd.py``)


class CodecState(NamedTuple):
    residual: np.ndarray  # error feedback: what the last encodings left out (float64; empty when off)
    step: np.ndarray  # 0-d int64: encodings so far (randk's draw and the stochastic rounding follow it)


def parse(spec: str | None, error_feedback: bool = True, seed: int = 0) -> Codec | None:
    """The codec a spec names (None for ``none``); one line naming the fault otherwise.

    >>> parse("topk:0.1+int8").quantizer, parse("none"), parse("sign").fraction
    ('int8', None, 1.0)
    >>> parse("int8+topk:0.1")
    Traceback (most recent call last):
    ...
    shardlearn.core.errors.ConfigError: compression='int8+topk:0.1': a sparsifier (topk:F, randk:F) comes first, then a quantizer (fp16, bf16, int8, sign)
    """
    if spec is None or spec == "none":
        return None
    if str(spec).startswith("powersgd"):
        name, _, arg = str(spec).partition(":")
        if name != "powersgd" or not arg.isdigit() or int(arg) < 1:
            raise ConfigError(f"compression={spec!r}: PowerSGD takes its rank, powersgd:R with R >= 1 (e.g. "
                              "powersgd:2), and composes with no other codec")
        return Codec(str(spec), None, 1.0, None, bool(error_feedback), int(seed), int(arg))
    parts = str(spec).split("+")
    for part in parts:
        name, _, arg = part.strip().partition(":")
        if not (name in SPARSIFIERS or (name in QUANTIZERS and not arg)):
            raise ConfigError(f"compression={spec!r}: {part.strip()!r} is not a codec; expected none, fp16, bf16, "
                              "int8, sign, topk:F or randk:F, composed with + (e.g. topk:0.1+int8), or powersgd:R")
    sparsifier, fraction, quantizer = None, 1.0, None
    order = "a sparsifier (topk:F, randk:F) comes first, then a quantizer (fp16, bf16, int8, sign)"
    for i, part in enumerate(parts):
        name, _, arg = part.strip().partition(":")
        if name in SPARSIFIERS:
            if i != 0:
                raise ConfigError(f"compression={spec!r}: {order}")
            try:
                fraction = float(arg)
            except ValueError:
                fraction = -1.0
            if not 0.0 < fraction <= 1.0:
                raise ConfigError(f"compression={spec!r}: {name} takes the share of coordinates kept, "
                                  f"{name}:F with 0 < F <= 1 (e.g. {name}:0.1)")
            sparsifier = name
        else:  # a quantizer: the last part
            if quantizer is not None or i != len(parts) - 1:
                raise ConfigError(f"compression={spec!r}: {order}")
            quantizer = name
    return Codec(str(spec), sparsifier, fraction, quantizer, bool(error_feedback), int(seed))


def init(codec: Codec, n: int) -> CodecState:
    return CodecState(np.zeros(n if codec.error_feedback else 0), np.array(0, dtype=np.int64))


def kept(codec: Codec, n: int) -> int:
    """How many coordinates of an ``n``-vector travel."""
    return n if codec.sparsifier is None else min(n, max(1, math.ceil(codec.fraction * n)))


def payload_bytes(codec: Codec, n: int) -> int:
    """The encoding's size in bytes for an ``n``-vector (the same on every worker)."""
    m = kept(codec, n)
    q = codec.quantizer
    if q == "sign":
        values = -(-m // 8) + 2 * -(-m // BLOCK)
    elif q == "int8":
        values = m + 4 * -(-m // BLOCK)
    else:
        values = VALUE_BYTES[q] * m
    return values + (index_bytes(n, m) if codec.sparsifier == "topk" else 0)


def index_bytes(n: int, m: int) -> int:
    """Bytes for the positions of ``m`` distinct coordinates of an ``n``-vector: a bitmap
    (``ceil(n / 8)``) when that is no larger than a list of 16-bit (``n <= 65536``) or 32-bit
    indices; a bitmap wins from ``m >= n / 16`` (``n / 32`` past 65536), so ``topk:0.1`` sends
    1.25 bits per coordinate of the vector, not 3.2.

    >>> index_bytes(124, 13), index_bytes(10**6, 1000), index_bytes(10**6, 10**5)
    (16, 4000, 125000)
    """
    return min(-(-n // 8), (2 if n <= 65536 else 4) * m)


def _pack_index(idx: np.ndarray, n: int) -> bytes:
    if -(-n // 8) == index_bytes(n, idx.size):
        mask = np.zeros(n, dtype=bool)
        mask[idx] = True
        return np.packbits(mask).tobytes()
    return idx.astype(np.uint16 if n <= 65536 else np.int32).tobytes()


def _unpack_index(buf: np.ndarray, n: int, m: int) -> np.ndarray:
    if -(-n // 8) == index_bytes(n, m):
        return np.flatnonzero(np.unpackbits(buf, count=n))
    return buf.view(np.uint16 if n <= 65536 else np.int32).astype(np.int64)


def _randk(codec: Codec, n: int, step: int, stream: int = 0) -> np.ndarray:
    rng = np.random.default_rng([codec.seed, 0x5EED, step] + ([stream] if stream else []))
    return np.sort(rng.choice(n, size=kept(codec, n), replace=False)).astype(np.int64)


def _bf16(x: np.ndarray) -> np.ndarray:
    """``x`` as bf16 bits (uint16): its float32's top half, rounded to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _from_bf16(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def _quantize(q: str | None, x: np.ndarray, rng) -> bytes:
    if q is None:
        return np.ascontiguousarray(x, dtype=np.float64).tobytes()
    if q == "fp16":
        return np.clip(x, -FP16_MAX, FP16_MAX).astype(np.float16).tobytes()
    if q == "bf16":
        return _bf16(x).tobytes()
    m = x.size
    blocks = -(-m // BLOCK)
    padded = np.zeros(blocks * BLOCK)
    padded[:m] = x
    padded = padded.reshape(blocks, BLOCK)
    if q == "sign":  # a block's mean magnitude (over its own values: the last block may be short)
        per = np.minimum(BLOCK, m - BLOCK * np.arange(blocks))
        scale = np.abs(padded).sum(axis=1) / np.maximum(per, 1)
        return np.packbits(x >= 0).tobytes() + _bf16(scale).tobytes()
    # int8: a scale per block, q = round(127 x / scale) rounded up with probability of the remainder
    scale = np.abs(padded).max(axis=1).astype(np.float32)
    unit = np.where(scale > 0, 127.0 / np.where(scale > 0, scale, 1.0), 0.0)[:, None]
    scaled = padded * unit
    q8 = np.floor(scaled + rng.random(scaled.shape)).clip(-127, 127).astype(np.int8)
    return q8.ravel()[:m].tobytes() + scale.tobytes()


def _dequantize(q: str | None, buf: np.ndarray, m: int) -> np.ndarray:
    if q is None:
        return buf.view(np.float64)[:m].astype(np.float64)
    if q == "fp16":
        return buf.view(np.float16)[:m].astype(np.float64)
    if q == "bf16":
        return _from_bf16(buf.view(np.uint16)[:m])
    blocks = -(-m // BLOCK)
    if q == "sign":
        nb = -(-m // 8)
        scale = np.repeat(_from_bf16(buf[nb : nb + 2 * blocks].view(np.uint16)), BLOCK)[:m]
        return np.where(np.unpackbits(buf[:nb], count=m).astype(bool), scale, -scale)
    scale = buf[m : m + 4 * blocks].view(np.float32).astype(np.float64)
    per = np.repeat(scale / 127.0, BLOCK)[:m]
    return buf[:m].view(np.int8).astype(np.float64) * per


def encode(codec: Codec, v: np.ndarray, state: CodecState, rank: int = 0,
           stream: int = 0) -> tuple[np.ndarray, CodecState]:
    """``(payload: uint8 array of payload_bytes(codec, v.size), new state)``; with error
    feedback, ``v`` plus the carried residual is encoded and the new residual kept.
    ``stream``: which of a step's encodings this is (a chunk of a two-phase sum), so each
    draws its own random coordinates and rounding; 0 for a whole vector."""
    v = np.asarray(v, dtype=np.float64).ravel()
    n, step = v.size, int(state.step)
    x = v + state.residual if codec.error_feedback else v
    if codec.sparsifier == "topk":
        m = kept(codec, n)
        idx = np.sort(np.argpartition(np.abs(x), n - m)[n - m :]).astype(np.int64) if m < n else np.arange(n)
    elif codec.sparsifier == "randk":
        idx = _randk(codec, n, step, stream)
    else:
        idx = None
    values = x if idx is None else x[idx]
    rng = np.random.default_rng([codec.seed, int(rank), step] + ([stream] if stream else []))
    body = _quantize(codec.quantizer, values, rng)
    head = _pack_index(idx, n) if codec.sparsifier == "topk" else b""
    payload = np.frombuffer(head + body, dtype=np.uint8).copy()
    residual = state.residual
    if codec.error_feedback:
        residual = x - decode(codec, payload, n, step, stream)
    return payload, CodecState(residual, np.array(step + 1, dtype=np.int64))


def decode(codec: Codec, payload: np.ndarray, n: int, step: int, stream: int = 0) -> np.ndarray:
    """The dense float64 ``n``-vector a payload stands for (``step`` and ``stream``: the
    encoding's, which random-k's coordinates follow); bytes past the payload's size (padding)
    are ignored."""
    payload = np.ascontiguousarray(payload[: payload_bytes(codec, n)], dtype=np.uint8)
    m = kept(codec, n)
    if codec.sparsifier == "topk":
        k = index_bytes(n, m)
        idx = _unpack_index(payload[:k], n, m)
        body = payload[k:]
    else:
        idx = _randk(codec, n, step, stream) if codec.sparsifier == "randk" else None
        body = payload
    values = _dequantize(codec.quantizer, body, m)
    if idx is None:
        return values
    out = np.zeros(n)
    out[idx] = values
    return out
