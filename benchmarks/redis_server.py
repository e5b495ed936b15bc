"""A throwaway ``redis-server`` (Debian's package) on a free loopback port, for the tests and
benchmarks of the Redis Streams source: no saving, no append-only file, its files in ``folder``.

    proc, port = start("/tmp/r")   # ... redis.Redis(port=port) ...
    proc.terminate(); proc.wait()
"""
from __future__ import annotations

import shutil
import subprocess
import time

from shardlearn.runtime.launch import free_port


def start(folder: str, wait_s: float = 10.0):
    """Start the server and wait until it answers a ping; returns ``(process, port)``.
    Raises FileNotFoundError when ``redis-server`` is not installed, TimeoutError when it
    does not answer within ``wait_s`` (the process is ended first)."""
    import redis

    exe = shutil.which("redis-server")
    if exe is None:
        raise FileNotFoundError("redis-server is not installed (apt-get install -y redis-server; .ci/run does)")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client, deadline = redis.Redis(port=port), time.monotonic() + wait_s
    while True:
        try:
            client.ping()
            return proc, port
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                proc.wait()
                raise TimeoutError(f"redis-server on port {port} did not answer within {wait_s:.0f} s") from None
            time.sleep(0.05)
        finally:
            client.close()
