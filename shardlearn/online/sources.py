"""Where a stream's lines come from, in blocks of whole lines, each with the position
just past it, so a checkpoint can say exactly where learning stopped.

- a file (``path``): read from a byte offset; ends at end of file;
- ``-``: standard input (no position to go back to: a run from stdin cannot resume);
- a followed file (``follow=True``, like ``tail -f``): at end of file, waits for more and
  hands over a last line only once its newline has arrived.

``stop()`` (checked between reads) ends a followed stream; ``idle`` seconds without a new
line end it too.

>>> import os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "s.vw")
>>> _ = open(p, "wb").write(b"1 |a x\\n-1 |a y\\n1 |a z")
>>> [(bytes(b), end) for b, end in blocks(p, start=7, block_bytes=4)]
[(b'-1 |a y\\n', 15), (b'1 |a z', 21)]
"""
from __future__ import annotations

import os
import sys
import time

BLOCK_BYTES = 1 << 20


def _whole_lines(read, start: int, block_bytes: int, more, stop, idle: float | None):
    """Blocks of whole lines from ``read(n)``; at end of input ``more()`` says whether to wait
    (a followed file) and the partial last line is held until its newline comes (or, when not
    waiting, handed over as it is)."""
    pos, carry, last_data = start, b"", time.monotonic()
    while not stop():
        chunk = read(block_bytes)
        if chunk:
            last_data = time.monotonic()
            buf = carry + chunk
            cut = buf.rfind(b"\n") + 1
            if cut:
                pos += cut
                yield buf[:cut], pos
                carry = buf[cut:]
            else:
                carry = buf
            continue
        if not more():
            if carry:
                yield carry, pos + len(carry)
            return
        if idle is not None and time.monotonic() - last_data >= idle:
            return
        time.sleep(0.05)


def blocks(path: str, *, start: int = 0, block_bytes: int = BLOCK_BYTES, follow: bool = False, stop=None,
           idle: float | None = None):
    """``(block, end)`` pairs: ``block`` whole lines, ``end`` the byte offset just past it."""
    stop = stop or (lambda: False)
    if path == "-":
        if start:
            raise ValueError("standard input cannot be read from a position; resume from a file")
        stream = sys.stdin.buffer
        yield from _whole_lines(lambda n: stream.read1(n) if hasattr(stream, "read1") else stream.read(n), 0,
                                block_bytes, lambda: False, stop, idle)
        return
    with open(path, "rb") as f:
        f.seek(start)
        yield from _whole_lines(f.read, start, block_bytes, lambda: follow, stop, idle)


def size(path: str) -> int | None:
    return None if path == "-" else os.path.getsize(path)
