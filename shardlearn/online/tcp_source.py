"""A TCP socket as a source of examples: ``tcp://HOST:PORT``, one example per line.

The learner listens on ``HOST:PORT`` (as Vowpal Wabbit's daemon does) and reads lines from
every producer that connects, as they come (several connections at once, multiplexed with
``selectors``). Lines are numbered in the order the learner takes them: the position a
checkpoint holds is ``{"seq": N}``, the number of lines learned. To every connection the
learner first sends one line, ``next N``, the sequence number it expects next: a producer
that resends from there gets each example applied exactly once across a learner's crash
and restart; a producer that ignores it (``nc``) just streams. A line that has not ended
when its connection closes is learned as it is; one still open is held until its newline
comes.

>>> TcpSource.parse("tcp://127.0.0.1:7001")
('127.0.0.1', 7001)
"""
from __future__ import annotations

import selectors
import socket
import time
from urllib.parse import urlparse

from shardlearn.core.errors import ConfigError

READ_BYTES = 1 << 16  # per recv; a block is what all connections had ready at one select


class TcpSource:
    resumable = True

    def __init__(self, url: str):
        self.host, self.port = self.parse(url)
        self.name = url
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.listener.bind((self.host, self.port))
        except OSError as e:
            self.listener.close()
            raise ConfigError(f"{url}: cannot listen ({e.strerror})") from None
        self.listener.listen(16)
        self.listener.setblocking(False)

    @staticmethod
    def parse(url: str):
        u = urlparse(url)
        if u.scheme != "tcp" or not u.hostname or not u.port:
            raise ConfigError(f"{url!r} is not a socket address; expected tcp://HOST:PORT")
        return u.hostname, u.port

    def blocks(self, start: dict | None = None, stop=None, idle: float | None = None):
        stop = stop or (lambda: False)
        seq = int(start["seq"]) if start else 0
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ, None)
        carry: dict = {}
        last_data = time.monotonic()
        try:
            while not stop():
                ready, lines = sel.select(timeout=0.05), []
                for key, _ in ready:
                    if key.data is None:  # a producer connects: tell it where to resume
                        conn, _ = self.listener.accept()
                        conn.sendall(f"next {seq}\n".encode())
                        conn.setblocking(False)
                        sel.register(conn, selectors.EVENT_READ, conn.fileno())
                        carry[conn.fileno()] = b""
                        continue
                    conn = key.fileobj
                    try:
                        chunk = conn.recv(READ_BYTES)
                    except BlockingIOError:  # nothing after all
                        continue
                    except ConnectionResetError:
                        chunk = b""
                    buf = carry[key.data] + chunk
                    if not chunk:  # closed: its unfinished last line is whole now
                        sel.unregister(conn)
                        conn.close()
                        del carry[key.data]
                        if buf.strip():
                            lines.append(buf if buf.endswith(b"\n") else buf + b"\n")
                        continue
                    cut = buf.rfind(b"\n") + 1
                    lines.append(buf[:cut])
                    carry[key.data] = buf[cut:]
                block = b"".join(lines)
                if not block:
                    if idle is not None and time.monotonic() - last_data >= idle:
                        return
                    continue
                last_data = time.monotonic()
                first, seq = seq, seq + block.count(b"\n")
                yield block, {"seq": seq}, (lambda i, first=first: f"{self.name}: example {first + i + 1}"), {}
        finally:
            for key in list(sel.get_map().values()):
                if key.data is not None:
                    key.fileobj.close()
            sel.close()
            self.listener.close()

    def committed(self, position: dict) -> None:
        """Nothing to acknowledge: a producer learns the position from the next connection's greeting."""
