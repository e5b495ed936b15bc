"""Where a stream's lines come from, in blocks of whole lines, each with the *position*
just past it (a JSON-able dict) so a checkpoint can say exactly where learning stopped:

- a file (``path``): ``{"offset", "line"}``, read from a byte offset; ends at end of file;
- ``-``: standard input (no position to go back to: a run from stdin cannot resume);
- a followed file (``follow=True``, like ``tail -f``): at end of file, waits for more and
  hands over a last line only once its newline has arrived;
- ``redis://HOST:PORT/STREAM?group=G&consumer=C``: Redis Streams (``online/redis_stream.py``);
- ``tcp://HOST:PORT``: a socket the learner listens on, one example a line (``online/tcp_source.py``).

A source's ``blocks(start, stop, idle)`` yields ``(block, position, where, skipped)``:
``where(i)`` names the block's line ``i`` for an error message, ``skipped`` counts what
the source itself dropped. ``committed(position)`` is called once a checkpoint holding
``position`` is durable (Redis acknowledges the entries then). ``stop()`` (checked between
reads) ends a stream; ``idle`` seconds without a new line end it too.

>>> import os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "s.vw")
>>> _ = open(p, "wb").write(b"1 |a x\\n-1 |a y\\n1 |a z")
>>> src = FileSource(p, block_bytes=4)
>>> [(bytes(b), pos, where(0)) for b, pos, where, _ in src.blocks({"offset": 7, "line": 2})]  # doctest: +ELLIPSIS
[(b'-1 |a y\\n', {'offset': 15, 'line': 3}, '...s.vw: line 2'), (b'1 |a z', {'offset': 21, 'line': 3}, '...s.vw: line 3')]
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from shardlearn.core.errors import DataError

BLOCK_BYTES = 1 << 20


def open_source(spec: str, *, follow: bool = False, block_bytes: int = BLOCK_BYTES):
    """The source a command line names."""
    if spec.startswith("redis://"):
        from shardlearn.online.redis_stream import RedisStream

        return RedisStream(spec)
    if spec.startswith("tcp://"):
        from shardlearn.online.tcp_source import TcpSource

        return TcpSource(spec)
    return FileSource(spec, follow=follow, block_bytes=block_bytes)


def _whole_lines(read, block_bytes: int, more, stop, idle: float | None):
    """``(lines, length)`` blocks of whole lines from ``read(n)``; at end of input ``more()``
    says whether to wait (a followed file), and the partial last line is held until its
    newline comes (or, when not waiting, handed over as it is)."""
    carry, last_data = b"", time.monotonic()
    while not stop():
        chunk = read(block_bytes)
        if chunk:
            last_data = time.monotonic()
            buf = carry + chunk
            cut = buf.rfind(b"\n") + 1
            if cut:
                yield buf[:cut]
                carry = buf[cut:]
            else:
                carry = buf
            continue
        if not more():
            if carry:
                yield carry
            return
        if idle is not None and time.monotonic() - last_data >= idle:
            return
        time.sleep(0.05)


class FileSource:
    """A file, or standard input (``-``), read in blocks of ``block_bytes``."""

    def __init__(self, path: str, *, follow: bool = False, block_bytes: int = BLOCK_BYTES):
        if path != "-" and not os.path.isfile(path):
            raise DataError(f"{path}: {'is a directory, not a file' if os.path.isdir(path) else 'no such file'}")
        self.path, self.follow, self.block_bytes = path, follow, block_bytes
        self.name = path
        self.resumable = path != "-"

    def blocks(self, start: dict | None = None, stop=None, idle: float | None = None):
        stop = stop or (lambda: False)
        offset, line = (int(start["offset"]), int(start["line"])) if start else (0, 1)
        if self.path == "-":
            stream = sys.stdin.buffer
            read = stream.read1 if hasattr(stream, "read1") else stream.read
            yield from self._numbered(_whole_lines(read, self.block_bytes, lambda: False, stop, idle), offset, line)
            return
        with open(self.path, "rb") as f:
            f.seek(offset)
            lines = _whole_lines(f.read, self.block_bytes, lambda: self.follow, stop, idle)
            yield from self._numbered(lines, offset, line)

    def _numbered(self, blocks, offset: int, line: int):
        for buf in blocks:
            first = line
            offset, line = offset + len(buf), line + buf.count(b"\n")
            yield buf, {"offset": offset, "line": line}, (lambda i, first=first: f"{self.path}: line {first + i}"), {}

    def committed(self, position: dict) -> None:
        """Nothing to tell a file."""


def share_of_lines(buf: bytes, first: int, workers: int, rank: int, from_line: int = 1) -> tuple[bytes, np.ndarray]:
    """The lines of ``buf`` (numbered from ``first``) that are worker ``rank``'s: line ``L >= from_line``
    goes to worker ``(L - from_line) % workers``. Returns those lines and their numbers
    (vectorised: one pass of numpy over the bytes, no Python per line).

    >>> share_of_lines(b"a\\nb\\nc\\nd", 1, 2, 1)
    (b'b\\nd', array([2, 4]))
    """
    a = np.frombuffer(buf, dtype=np.uint8)
    ends = np.flatnonzero(a == 10) + 1
    starts = np.concatenate([[0], ends])
    stops = np.concatenate([ends, [a.size]])
    if starts[-1] == a.size:  # no partial line after the last newline
        starts, stops = starts[:-1], stops[:-1]
    numbers = first + np.arange(starts.size)
    keep = (numbers >= from_line) & ((numbers - from_line) % workers == rank)
    if keep.all():
        return bytes(buf), numbers
    return a[np.repeat(keep, stops - starts)].tobytes(), numbers[keep]


class LineShare:
    """Worker ``rank`` of ``workers``' share of a file's lines (``share_of_lines``: line ``L`` is
    worker ``(L - from_line) % workers``'s; a CSV's header, line 1, is nobody's). Positions are
    the file's own, so each worker checkpoints where it is in the file and, followed, every
    worker sees the file grow."""

    def __init__(self, src: FileSource, workers: int, rank: int, from_line: int = 1):
        self.src, self.workers, self.rank, self.from_line = src, workers, rank, from_line
        self.name, self.resumable = src.name, src.resumable

    def blocks(self, start: dict | None = None, stop=None, idle: float | None = None):
        line = int(start["line"]) if start else 1
        for buf, pos, _, skipped in self.src.blocks(start, stop, idle):
            mine, numbers = share_of_lines(buf, line, self.workers, self.rank, self.from_line)
            line = pos["line"]
            yield mine, pos, (lambda i, numbers=numbers: f"{self.name}: line {numbers[i]}"), skipped

    def committed(self, position: dict) -> None:
        self.src.committed(position)
