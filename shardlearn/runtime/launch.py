"""Where a process learns its place in a job. Environment variables (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, TORCHELASTIC_RESTART_COUNT) are
read here and nowhere else; torch is imported here (and in ``comm``) only.

>>> w = from_env({"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"})
>>> (w.rank, w.world_size, w.restart_count, w.store_prefix)
(1, 2, 0, 'shardlearn/attempt-0/')
>>> from_env({}) is None
True
"""
from __future__ import annotations

import contextlib
import os
import random
import socket
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class WorldInfo:
    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    restart_count: int
    agent_store: bool = False  # torchrun's agent hosts the rendezvous store; workers only connect

    @property
    def store_prefix(self) -> str:
        """Each restart attempt keeps its keys apart in the rendezvous store: restarted
        gloo groups were seen to hang or refuse connections without it."""
        return f"shardlearn/attempt-{self.restart_count}/"


def from_env(env=None) -> WorldInfo | None:
    """The torchrun-style description of this process, or None outside such a job."""
    env = os.environ if env is None else env
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    return WorldInfo(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", env["RANK"])),
                     env.get("MASTER_ADDR", "127.0.0.1"), int(env.get("MASTER_PORT", "29500")),
                     int(env.get("TORCHELASTIC_RESTART_COUNT", "0")),
                     env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() in ("1", "true"))


@contextlib.contextmanager
def own_store():
    """Within this block torch's ``tcp://`` rendezvous hosts its store on rank 0 even under torchrun:
    torch reads TORCHELASTIC_USE_AGENT_STORE and would otherwise wait for a store nobody hosts
    on the port shardlearn picked (the RPC group's)."""
    saved = os.environ.pop("TORCHELASTIC_USE_AGENT_STORE", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["TORCHELASTIC_USE_AGENT_STORE"] = saved


def rpc_address() -> str:
    """Where the RPC group meets: torchrun's master address, or loopback for local workers."""
    w = from_env()
    return "127.0.0.1" if w is None else w.master_addr


EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
LOWEST_PORT = 10000  # below: ports services are registered on


def free_port(host: str = "127.0.0.1", tries: int = 64) -> int:
    """A TCP port nobody listens on right now, drawn below the system's ephemeral range where
    it leaves room: a port from that range (what binding port 0 hands out) can be taken by any
    outgoing connection (gloo's pairs, TensorPipe's, a redis client's) between our picking it
    and the store binding it, which failed a CI run with EADDRINUSE. Elsewhere the OS picks.

    >>> 0 < free_port() < 65536
    True
    """
    low = _ephemeral_low()
    if low - LOWEST_PORT >= 1000:
        draw = random.SystemRandom()  # not the seeded generators: two groups must not draw alike
        for _ in range(tries):
            port = draw.randrange(LOWEST_PORT, low)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _ephemeral_low() -> int:
    """The first port of the range the OS hands out to outgoing connections (Linux; 0 elsewhere)."""
    try:
        with open(EPHEMERAL_RANGE) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


AUTHKEY_VAR = "SHARDLEARN_GROUP_AUTHKEY"
SCRATCH_VAR = "SHARDLEARN_SCRATCH"


def scratch_dir() -> str | None:
    """Where a worker puts files the others map (Hogwild's vector, parameter-server slices):
    its group's own folder in ``/dev/shm``, which the driver removes with the group, so a
    killed or interrupted fit leaves nothing behind; outside a local group, ``/dev/shm``
    itself (None: the system's temporary folder)."""
    mine = os.environ.get(SCRATCH_VAR)
    if mine and os.path.isdir(mine):
        return mine
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def driver_authkey() -> bytes:
    """The secret a local worker proves to its driver (handed over in the environment)."""
    return bytes.fromhex(os.environ[AUTHKEY_VAR])


def worker_env(authkey: bytes, scratch: str | None = None) -> dict:
    """The environment for a local worker: the driver's, minus torchrun's variables, plus the key
    and the group's scratch folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                           "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT")}
    env[AUTHKEY_VAR] = authkey.hex()
    if scratch is not None:
        env[SCRATCH_VAR] = scratch
    env.setdefault("OMP_NUM_THREADS", "1")
    # the driver's import path (its working directory first), so "module:function" jobs import
    paths = [p or os.getcwd() for p in sys.path if p == "" or os.path.isdir(p)]
    known = paths + env.get("PYTHONPATH", "").split(os.pathsep)
    env["PYTHONPATH"] = os.pathsep.join(p for p in dict.fromkeys(known) if p)
    return env


AUTO_MB_PER_WORKER = 128  # workers=None: one worker per this much data (their start-up, ~5 s, must pay)


def auto_workers(nbytes: int) -> tuple[int, str]:
    """``workers=None`` (the CLI's and the estimators' default): one worker per
    ``AUTO_MB_PER_WORKER`` MB of data, at least one, at most one per core; and the sentence
    that says so.

    >>> auto_workers(2 << 20)[0], auto_workers(2 << 20)[1].split(";")[0]
    (1, '1 worker for 2.0 MB of data (one per 128 MB, at most one per core)')
    """
    cores = cpu_count()
    n = int(max(1, min(cores, nbytes // (AUTO_MB_PER_WORKER << 20))))
    return n, (f"{n} worker{'s' if n > 1 else ''} for {nbytes / (1 << 20):.1f} MB of data (one per "
               f"{AUTO_MB_PER_WORKER} MB, at most one per core); --workers N chooses")


WORKERS_PER_CORE = 4  # more local workers than this per core only take turns
WORKER_MB = 400  # what one local worker holds before its data: an interpreter, torch and gloo (measured 350 MB)


def check_local(n: int) -> None:
    """Before starting ``n`` local worker processes: a one-line ``ConfigError`` when this machine
    cannot run them (more than ``WORKERS_PER_CORE`` per core, or more than its free memory
    holds), a warning when there are more than cores."""
    import warnings

    from shardlearn.core.errors import ConfigError

    cores, free_mb = cpu_count(), available_mb()
    most = max(1, min(WORKERS_PER_CORE * cores, free_mb // WORKER_MB))
    if n > most:
        raise ConfigError(f"{n} local workers: this machine can run at most {most} ({cores} cores, "
                          f"{WORKERS_PER_CORE} workers per core at most; {free_mb / 1024:.1f} GiB of memory free, "
                          f"about {WORKER_MB} MB per worker); ask for fewer, or run on many machines with torchrun")
    if n > cores:
        warnings.warn(f"{n} local workers on {cores} cores: they take turns on the cores, so this fit is slower "
                      f"than with {cores} workers", RuntimeWarning, stacklevel=3)


def available_mb() -> int:
    """Memory the system can give without swapping (MemAvailable), in MB."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") // (1 << 20)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def ranks_here(env=None) -> tuple[int, int]:
    """``(ranks in the job, ranks on this host)``: a torchrun job spans hosts when the first
    is larger (``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``); ``(1, 1)`` outside one.

    >>> ranks_here({"RANK": "0", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "2"}), ranks_here({})
    ((8, 2), (1, 1))
    """
    env = os.environ if env is None else env
    w = from_env(env)
    if w is None:
        return 1, 1
    return w.world_size, int(env.get("LOCAL_WORLD_SIZE", w.world_size))


def bind_to_route(w: WorldInfo, env=None) -> str | None:
    """When the master is another host, point gloo and TensorPipe (``GLOO_SOCKET_IFNAME``,
    ``TP_SOCKET_IFNAME``) at the interface that routes to it, unless the user set them; a
    master address that does not resolve or that no interface routes to is one line.
    Returns the interface (None: the master is this host's loopback, nothing to choose).

    >>> bind_to_route(WorldInfo(1, 2, 1, "127.0.0.1", 29500, 0), {}) is None
    True
    >>> bind_to_route(WorldInfo(1, 2, 1, "no-such-host.invalid", 29500, 0), {})
    Traceback (most recent call last):
    ...
    shardlearn.core.errors.ConfigError: MASTER_ADDR 'no-such-host.invalid' does not resolve on this host; give torchrun --master-addr an address
    """
    from shardlearn.core.errors import ConfigError
    from shardlearn.runtime import netif

    env = os.environ if env is None else env
    if env.get("GLOO_SOCKET_IFNAME"):
        return env["GLOO_SOCKET_IFNAME"]
    ip = netif.resolve(w.master_addr)
    if ip is None:
        raise ConfigError(f"MASTER_ADDR {w.master_addr!r} does not resolve on this host; give torchrun --master-addr "
                          "an address")
    if netif.is_loopback(ip):  # one host (several torchrun nodes on it are fine), or a mistake: see join_from_env
        return None
    local = netif.route_to(ip)
    name = netif.interface_of(local) if local else None
    if name is None:
        raise ConfigError(f"MASTER_ADDR {w.master_addr!r} ({ip}): no interface of this host routes to it; set "
                          "GLOO_SOCKET_IFNAME and TP_SOCKET_IFNAME to the one that does")
    env["GLOO_SOCKET_IFNAME"] = name
    env.setdefault("TP_SOCKET_IFNAME", name)
    return name


def join_from_env(timeout_s: float = 120.0):
    """Join the torch.distributed group of a torchrun job (rendezvous already done by torchrun),
    with this restart attempt's prefix on the store's keys, bound to the interface that
    reaches the master (``bind_to_route``). A group that cannot connect while the master is
    this host's loopback and ranks run elsewhere (``ranks_here``) ends in one line that says
    so: every other host would have dialled its own loopback."""
    from shardlearn.comm import torch_backend
    from shardlearn.core.errors import ConfigError
    from shardlearn.runtime import netif

    w = from_env()
    bind_to_route(w)
    try:
        return torch_backend.init(w.rank, w.world_size, w.master_addr, w.master_port, timeout_s=timeout_s,
                                  prefix=w.store_prefix, host_store=False if w.agent_store else None)
    except Exception as e:  # noqa: BLE001 - gloo's and the store's errors: a C++ trace otherwise
        total, here = ranks_here()
        if total > here and netif.is_loopback(w.master_addr):
            raise ConfigError(f"the group did not connect ({type(e).__name__}): MASTER_ADDR {w.master_addr!r} is "
                              f"this host's loopback, and {total - here} of {total} ranks run on other hosts, which "
                              "dial their own; give torchrun --master-addr (or --local-addr with c10d) an address "
                              "the other hosts reach") from None
        raise


def join(rank: int, world_size: int, port: int, prefix: str, timeout_s: float = 60.0, addr: str = "127.0.0.1",
         host_store: bool | None = None):
    """Join a group on ``addr:port`` (rank 0 hosts the store; ``host_store=False``: someone
    else does, such as the driver of a job another engine started)."""
    from shardlearn.comm import torch_backend

    return torch_backend.init(rank, world_size, addr, port, timeout_s=timeout_s, prefix=prefix,
                              host_store=host_store)


def host_store(addr: str, port: int, world_size: int, timeout_s: float = 60.0, multi_tenant: bool = False):
    """A rendezvous store for ``world_size`` ranks, hosted by this process (the driver of a job
    whose ranks another engine starts); keep it alive until they are done. ``multi_tenant``:
    a master store this process makes later on the same port shares its server."""
    from datetime import timedelta

    import torch.distributed as dist

    return dist.TCPStore(addr, port, world_size, is_master=True, timeout=timedelta(seconds=timeout_s),
                         wait_for_workers=False, multi_tenant=multi_tenant)


def rpc_store(addr: str, world_size: int, timeout_s: float = 120.0, tries: int = 8):
    """Rank 0 of an RPC group: ``(port, store)``, a store already listening on a free port of
    ``addr`` before any rank dials it. torch's ``tcp://`` rendezvous on that port shares it
    (multi-tenant) instead of binding its own inside ``init_rpc``, where a rank that dialled
    first waited out a back-off: 0.33-0.80 s in 7 of 30 local fits (docs/gotchas.md). Keep the
    store until the group has joined."""
    last = None
    for _ in range(tries):  # a port taken between picking and binding: another one
        port = free_port(addr)
        try:
            return port, host_store(addr, port, world_size, timeout_s, multi_tenant=True)
        except RuntimeError as e:  # DistNetworkError: the address is in use
            last = e
    raise RuntimeError(f"no free port for the RPC group's store on {addr} after {tries} tries: {last}")


def leave() -> None:
    from shardlearn.comm import torch_backend

    torch_backend.shutdown()
