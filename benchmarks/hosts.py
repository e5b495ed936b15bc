"""Hosts with their own addresses on this machine: ``n`` network namespaces, each with an
``eth0`` (a veth pair into one bridge) at ``10.<net>.0.<i+1>/24``, optionally rate-limited
(``tc ... tbf`` on each host's egress: netem is not available on this kernel). Needs root
(``ip netns``); the processes started in them are ended, and the namespaces, veths and
bridge removed, on exit. Each host keeps this machine's hostname, which resolves to
127.0.0.1 there too: the situation of Debian's ``127.0.1.1`` on real machines.

Each host also gets a boot id of its own (a file bound over
``/proc/sys/kernel/random/boot_id`` in its private mount namespace): TensorPipe (torch
RPC, the parameter server's transport) takes processes with the same boot id for one
machine and hands tensors between them by cross-memory attach, past the sockets. With
their own boot ids the hosts' RPC traffic crosses their (shaped) links, as it would
between machines.

Each host's processes get their share of this machine's cores as ``OMP_NUM_THREADS``
(unless the caller's environment sets it): with more BLAS threads than cores, OpenBLAS's
idle threads spin (about 2^28 cycles, ~0.1 s, after each parallel call) on the cores the
other hosts' collectives need. Four hosts of 2 threads each on 2 cores made each of a9a's
1 KB lbfgs allreduces take 82 ms on a rank (median) and a 40-iteration fit 3.5 s; with a
thread each, 8.7 ms and 0.44 s (``benchmarks/call_times.py``, ``docs/gotchas.md``).

    with Hosts(4, rate="100mbit") as h:
        codes, logs = h.torchrun(["-m", "shardlearn", "train", "d.csv", "--out", "m"], port=29500, timeout=300)
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid


def _end(p: subprocess.Popen) -> None:
    """End ``p`` (torchrun under ``ip netns exec``) and every process under it: torchrun starts
    its workers in sessions of their own, so they are found by ancestry, not by group."""
    import psutil

    try:
        tree = psutil.Process(p.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for child in tree:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    p.wait()


class HostsUnavailable(RuntimeError):
    """Namespaces cannot be made here (not root, no ``ip``, or a kernel without them)."""


def share(processes: int) -> int:
    """Threads each of ``processes`` processes gets of the cores this process may run on.

    >>> share(1) == len(os.sched_getaffinity(0)) and share(10**6) == 1
    True
    """
    return max(1, len(os.sched_getaffinity(0)) // processes)


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Hosts:
    def __init__(self, n: int, rate: str | None = None, net: int | None = None):
        tag = os.getpid() % 100000
        self.n, self.rate = n, rate
        self.net = net if net is not None else 64 + tag % 160
        self.bridge = f"slbr{tag}"
        self.names = [f"sl{tag}h{i}" for i in range(n)]
        self.addresses = [f"10.{self.net}.0.{i + 1}" for i in range(n)]
        self.procs: list[subprocess.Popen] = []
        self.boot_ids: list[str] = []

    def __enter__(self) -> "Hosts":
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise HostsUnavailable("network namespaces need root and iproute2's ip")
        if threading.current_thread() is threading.main_thread():  # a SIGTERM (timeout, kill) still cleans up
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            for i in range(self.n):  # a boot id of its own (a random UUID, as the kernel makes one)
                fd, path = tempfile.mkstemp(prefix=f"{self.names[i]}-boot-id-")
                with os.fdopen(fd, "w") as f:
                    f.write(f"{uuid.uuid4()}\n")
                self.boot_ids.append(path)
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("link", "set", self.bridge, "up")
            for i, (name, addr) in enumerate(zip(self.names, self.addresses)):
                _ip("netns", "add", name)
                _ip("link", "add", f"{name}v", "type", "veth", "peer", "name", "eth0", "netns", name)
                _ip("link", "set", f"{name}v", "master", self.bridge)
                _ip("link", "set", f"{name}v", "up")
                _ip("netns", "exec", name, "ip", "addr", "add", f"{addr}/24", "dev", "eth0")
                _ip("netns", "exec", name, "ip", "link", "set", "eth0", "up")
                _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
                if self.rate:
                    subprocess.run(["ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf",
                                    "rate", self.rate, "burst", "256kb", "latency", "100ms"],
                                   capture_output=True, text=True, check=True)
        except subprocess.CalledProcessError as e:
            self.__exit__()
            raise HostsUnavailable(f"{' '.join(e.cmd)}: {(e.stderr or '').strip()}") from None
        return self

    def start(self, i: int, argv: list, env: dict | None = None, **popen) -> subprocess.Popen:
        """Run ``argv`` on host ``i`` (this machine's files and environment, that host's network)."""
        popen.setdefault("start_new_session", True)  # its own process group: ended whole on exit
        own = ["sh", "-c", 'mount --bind "$0" /proc/sys/kernel/random/boot_id && exec "$@"', self.boot_ids[i]]
        p = subprocess.Popen(["ip", "netns", "exec", self.names[i], *own, *argv], env=env, **popen)
        self.procs.append(p)
        return p

    def torchrun(self, args: list, port: int, timeout: float = 300.0, nproc: int = 1, env: dict | None = None,
                 own_dir: str | None = None):
        """The README's multi-node line on every host (``torchrun --nnodes N --nproc-per-node K
        --node-rank i --master-addr HOST0 --master-port PORT``, then ``args``); waits for all of
        them. Returns ``(exit codes, each host's output)``; a host still running at ``timeout``
        is ended (code None). ``own_dir``: a directory every host but host 0 sees as an empty
        one of its own (a tmpfs mounted over it in that host's mount namespace, which ``ip netns
        exec`` makes private): a filesystem the hosts do not share."""
        logs = [tempfile.TemporaryFile(mode="w+") for _ in range(self.n)]
        torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
        line = [torchrun, "--nnodes", str(self.n), "--nproc-per-node", str(nproc), "--master-addr", self.addresses[0],
                "--master-port", str(port)]

        def argv(i):
            ours = [*line, "--node-rank", str(i), *args]
            if own_dir is None or i == 0:
                return ours
            return ["sh", "-c", 'mount -t tmpfs tmpfs "$0" && exec "$@"', own_dir, *ours]

        env = dict(os.environ if env is None else env)
        env.setdefault("OMP_NUM_THREADS", str(share(self.n * nproc)))
        procs = [self.start(i, argv(i), env=env, stdout=logs[i], stderr=subprocess.STDOUT) for i in range(self.n)]
        end = time.monotonic() + timeout
        while time.monotonic() < end and any(p.poll() is None for p in procs):
            time.sleep(0.2)
        codes = []
        for p in procs:
            if p.poll() is None:
                _end(p)
                codes.append(None)
            else:
                codes.append(p.returncode)
        out = []
        for f in logs:
            f.seek(0)
            out.append(f.read())
            f.close()
        return codes, out

    def interface_bytes(self, i: int) -> dict:
        """Host ``i``'s eth0 counters: ``{"tx": bytes sent, "rx": bytes received}`` (IP headers included)."""
        out = {}
        for k in ("tx", "rx"):
            counter = f"/sys/class/net/eth0/statistics/{k}_bytes"
            r = subprocess.run(["ip", "netns", "exec", self.names[i], "cat", counter],
                               capture_output=True, text=True, check=True)
            out[k] = int(r.stdout.strip())
        return out

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            _end(p)
        for name in self.names:
            _ip("netns", "del", name, check=False)
            _ip("link", "del", f"{name}v", check=False)
        _ip("link", "del", self.bridge, check=False)
        for path in self.boot_ids:
            os.remove(path)
        self.boot_ids = []
