"""Which of this host's addresses and interfaces reach a peer: what gloo and TensorPipe
must bind to in a job that spans hosts. Left to themselves they bind the address this
host's name resolves to, which is 127.0.0.1 (or Debian's 127.0.1.1) on many machines, and
every connection from another host is refused.

>>> route_to("127.0.0.1"), interface_of("127.0.0.1")
('127.0.0.1', 'lo')
>>> is_loopback("localhost"), is_loopback("10.0.0.1")
(True, False)
"""
from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

SIOCGIFADDR = 0x8915


def resolve(host: str) -> str | None:
    """``host``'s IPv4 address (None when it does not resolve)."""
    try:
        return socket.gethostbyname(host)
    except OSError:
        return None


def is_loopback(host: str) -> bool:
    ip = resolve(host)
    return ip is not None and ipaddress.ip_address(ip).is_loopback


def route_to(peer: str) -> str | None:
    """This host's address on the route to ``peer`` (None: no route). No packet is sent:
    connecting a UDP socket only asks the kernel for the route."""
    ip = resolve(peer)
    if ip is None:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((ip, 9))
        except OSError:
            return None
        return s.getsockname()[0]


def interface_of(address: str) -> str | None:
    """The name of the interface that holds ``address`` (None when none does)."""
    for _, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                raw = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
            except OSError:  # no IPv4 address on it
                continue
        if socket.inet_ntoa(raw[20:24]) == address:
            return name
    return None
