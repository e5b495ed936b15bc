"""Bytes on the wire, measured: what this process's TCP connections carried, from the
kernel's own counters, not from the shapes a collective was given.

Every TCP socket the process holds (gloo's connections, TensorPipe's for the parameter
server, the rendezvous store's) is asked for its ``TCP_INFO``: ``tcpi_bytes_acked`` (payload
bytes sent and acknowledged by the peer) and ``tcpi_bytes_received`` (payload bytes
received), RFC 4898's application-level octet counters, kept by Linux since 4.1 and 4.2.
Headers and retransmissions are not in them: they are what the application moved. A
difference of two readings is a step's traffic, as long as no connection closed between
them (the group's connections live as long as the group). None where the kernel does not
say (not Linux): the counted figures stay.

>>> import socket
>>> a, b = socket.socket(), socket.socket()
>>> a.bind(("127.0.0.1", 0)); a.listen(1); b.connect(a.getsockname())
>>> c, _ = a.accept()
>>> before = tcp_bytes()
>>> b.sendall(b"x" * 1000); _ = c.recv(4096)
>>> after = tcp_bytes()
>>> (after[0] - before[0], after[1] - before[1])  # this process sent 1000 and received them
(1000, 1000)
>>> for s in (a, b, c): s.close()
"""
from __future__ import annotations

import os
import socket
import struct
import sys

_TCP_INFO_LEN = 136  # through tcpi_bytes_received
_ACKED, _RECEIVED = 120, 128  # offsets of tcpi_bytes_acked and tcpi_bytes_received (u64) in struct tcp_info


def tcp_bytes() -> tuple[int, int] | None:
    """``(sent, received)`` payload bytes over every TCP connection this process holds now."""
    if not sys.platform.startswith("linux"):
        return None
    sent = received = 0
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for name in fds:
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            s = socket.fromfd(int(name), socket.AF_INET, socket.SOCK_STREAM)  # a duplicate, closed below
        except OSError:  # closed meanwhile (another thread's socket)
            continue
        try:
            if s.family in (socket.AF_INET, socket.AF_INET6) and s.type == socket.SOCK_STREAM:
                info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
                if len(info) >= _TCP_INFO_LEN:
                    sent += struct.unpack_from("Q", info, _ACKED)[0]
                    received += struct.unpack_from("Q", info, _RECEIVED)[0]
        except OSError:  # a listening socket, or one without TCP_INFO
            pass
        finally:
            s.close()
    return sent, received
