"""Bytes on the wire, measured: what this process's TCP connections carried, from the
kernel's own counters, not from the shapes a collective was given.

Every TCP socket the process holds (gloo's connections, TensorPipe's for the parameter
server, the rendezvous store's) is asked for its ``TCP_INFO``. Sent: the payload bytes the
application wrote, ``tcpi_bytes_sent - tcpi_bytes_retrans + tcpi_notsent_bytes`` (RFC 4898's
octets out, less retransmissions, plus what still waits in the send buffer; Linux 4.19+).
Not ``tcpi_bytes_acked``: a collective ends when a rank has *received* its part, and the
peer's acknowledgement of its own last chunk may still be on the way (a 60,000-wide lbfgs
step read up to 60 KB short, now and then). Received: ``tcpi_bytes_received``. Headers and
retransmissions are not in them: they are what the application moved. A difference of two
readings is a step's traffic, as long as no connection closed between them (the group's
connections live as long as the group). Kernels before 4.19 give the acknowledged bytes;
None where the kernel does not say (not Linux): the counted figures stay.

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

_TCP_INFO_LEN = 216  # through tcpi_bytes_retrans
_OLD_LEN = 136  # through tcpi_bytes_received (Linux 4.2-4.18)
# offsets in struct tcp_info (linux/tcp.h): u64 bytes_acked, bytes_received, bytes_sent, bytes_retrans; u32 notsent_bytes
_ACKED, _RECEIVED, _SENT, _RETRANS, _NOTSENT = 120, 128, 200, 208, 144


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
                    written = struct.unpack_from("Q", info, _SENT)[0] - struct.unpack_from("Q", info, _RETRANS)[0]
                    sent += written + struct.unpack_from("I", info, _NOTSENT)[0]
                elif len(info) >= _OLD_LEN:
                    sent += struct.unpack_from("Q", info, _ACKED)[0]
                if len(info) >= _OLD_LEN:
                    received += struct.unpack_from("Q", info, _RECEIVED)[0]
        except OSError:  # a listening socket, or one without TCP_INFO
            pass
        finally:
            s.close()
    return sent, received
