"""A local worker group: N processes on 127.0.0.1 joined in one gloo group, kept
alive between fits so a fit pays neither process start-up nor ``import torch``
again. The driver sends each worker a small task (names and file paths, never
the data) and gathers the results; a worker that raises or dies stops the whole
task within a second, naming its rank and error, and the group is replaced on
the next fit. Closed at interpreter exit or with ``shutdown()``.
"""
from __future__ import annotations

import atexit
import threading
from contextlib import contextmanager
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Listener, wait

from shardlearn.core.errors import ShardlearnError
from shardlearn.runtime import launch


class WorkerError(ShardlearnError, RuntimeError):
    """A worker raised or died; the message names its rank and what happened. ``died``: a
    worker process ended (killed, crashed, lost), which a restart can cure; otherwise a
    worker raised an error of its own (bad data, bad settings), which it cannot."""

    def __init__(self, message, died=False, rank=None, cause=None):
        super().__init__(message)
        self.died, self.rank, self.cause = died, rank, cause  # cause: the worker's (class name, message)


class LocalGroup:
    def __init__(self, size: int, start_timeout_s: float = 120.0, attempts: int = 3):
        self.size, self.procs, self.conns, self.on_progress, self.scratch = size, [], [], None, None
        last = None
        for attempt in range(attempts):
            try:
                self._start(attempt, start_timeout_s)
                return
            except WorkerError as e:  # e.g. the port was taken between picking and binding: try another
                last = e
                self.close()
            except BaseException:  # interrupted while starting (Ctrl-C, SIGTERM): end what was started
                self.close(kill=True)
                raise
        raise WorkerError(f"could not start {size} local workers: {last}")

    def _start(self, attempt, timeout_s):
        authkey = secrets.token_bytes(16)
        port = launch.free_port()
        # the group's own folder for files its workers share: removed with the group, however the fit ends
        self.scratch = tempfile.mkdtemp(prefix="shardlearn-group-", dir=launch.scratch_dir())
        with Listener(("127.0.0.1", 0), authkey=authkey) as listener:
            env = launch.worker_env(authkey, self.scratch)
            with _sigint_ignored():  # from their first instruction: a Ctrl-C while they import is the driver's
                self.procs = [subprocess.Popen([sys.executable, "-m", "shardlearn.runtime.worker", str(r),
                                                str(self.size), str(port), f"shardlearn/group-{attempt}/",
                                                str(listener.address[1])], env=env) for r in range(self.size)]
            self.conns = [None] * self.size
            failed: list = []

            def accept_all():  # in a thread, so the wait below can give up; closing the listener ends it
                try:
                    for _ in range(self.size):
                        conn = listener.accept()
                        _, rank, _ = conn.recv()
                        self.conns[rank] = conn
                except (OSError, EOFError) as e:
                    failed.append(e)

            acceptor = threading.Thread(target=accept_all, daemon=True)
            acceptor.start()
            acceptor.join(timeout_s)
            if acceptor.is_alive() or failed or None in self.conns:
                listener.close()
                acceptor.join(5.0)
                why = failed[0] if failed else "timed out"
                raise WorkerError(f"workers did not connect within {timeout_s:.0f} s ({why})")
        self._gather(timeout_s)

    def _gather(self, timeout_s=None):
        results, pending = [None] * self.size, set(range(self.size))
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        by_conn = {c: r for r, c in enumerate(self.conns)}
        while pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait([self.conns[r] for r in pending], timeout=left)
            if not ready:
                raise WorkerError(f"workers {sorted(pending)} did not answer within {timeout_s:.0f} s")
            for conn in ready:
                r = by_conn[conn]
                try:
                    status, value, _ = conn.recv()
                except (EOFError, OSError):
                    raise WorkerError(f"worker rank {r} {self._exit_text(r)}", died=True, rank=r) from None
                if status == "progress":
                    if self.on_progress is not None:
                        self.on_progress(value)
                    continue
                if status == "error":
                    dead = self._dead(grace_s=1.0)
                    if dead:  # the error is a peer's death seen through the collective: name the dead one
                        raise WorkerError(f"worker rank {dead[0]} {self._exit_text(dead[0])}", died=True, rank=dead[0])
                    raise WorkerError(f"worker rank {r} failed: {value[0]}: {value[1]}", rank=r, cause=value)
                results[r] = value
                pending.discard(r)
        return results

    def _dead(self, grace_s: float) -> list[int]:
        """Ranks whose process has ended, waiting up to ``grace_s`` for one to show."""
        deadline = time.monotonic() + grace_s
        while True:
            dead = [r for r, p in enumerate(self.procs) if p.poll() is not None]
            if dead or time.monotonic() >= deadline:
                return dead
            time.sleep(0.02)

    def _exit_text(self, r) -> str:
        try:
            code = self.procs[r].wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return "closed its connection"
        return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"

    def run(self, name: str, on_progress=None, **kwargs) -> list:
        """Run job ``name`` on every worker; their results, by rank. ``on_progress(record)``
        sees rank 0's per-step metrics as they happen."""
        try:
            for c in self.conns:
                c.send((name, kwargs))
            self.on_progress = on_progress
            return self._gather()
        except OSError as e:
            self.close(kill=True)
            raise WorkerError(f"lost contact with the workers: {e}", died=True) from None
        except BaseException:
            # a worker failed (the others may be blocked in a collective with it), or the driver was
            # interrupted (Ctrl-C, SIGTERM) mid-job: end them all; the next fit starts a fresh group
            self.close(kill=True)
            raise

    @property
    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def close(self, kill: bool = False) -> None:
        """Stop the workers: ask them to leave (wait up to 2 s), or with ``kill`` end them at once."""
        if kill:
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
        for c in self.conns:
            try:
                if c is not None:
                    c.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 2.0
        for p in self.procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=2.0)
        for c in self.conns:
            if c is not None:
                c.close()
        self.procs, self.conns = [], []
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


_GROUPS: dict[int, LocalGroup] = {}  # live groups by size: a cache of processes, not of results
_LOCKS: dict[int, threading.Lock] = {}  # one per group: a job holds its group's pipes alone
_GUARD = threading.Lock()  # guards the two tables


def get(size: int) -> LocalGroup:
    """The live group of ``size`` workers, started on first use (use ``lease`` to run jobs)."""
    with _GUARD:
        g = _GROUPS.get(size)
        if g is None or not g.alive:
            if g is not None:
                g.close()
            g = _GROUPS[size] = LocalGroup(size)
        return g


@contextmanager
def lease(size: int):
    """The group of ``size`` workers, held by this thread until the block ends: two threads
    fitting at once (a threaded ``GridSearchCV``) take turns instead of interleaving messages
    on the same pipes."""
    with _GUARD:
        lock = _LOCKS.setdefault(size, threading.Lock())
    with lock:
        yield get(size)


@contextmanager
def throttle(pid: int, factor: float, period_s: float = 0.02):
    """Slow process ``pid`` down about ``factor`` times for the block: it is stopped
    (SIGSTOP) for ``(factor - 1) * period_s`` after each ``period_s`` it runs (SIGCONT).
    A real straggler for experiments: nothing in the process knows it is slowed."""
    import os

    done = threading.Event()

    def cycle():
        while not done.is_set():
            done.wait(period_s)
            try:
                os.kill(pid, signal.SIGSTOP)
                done.wait((factor - 1.0) * period_s)
            finally:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    return

    t = threading.Thread(target=cycle, daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
        t.join()


@contextmanager
def _sigint_ignored():
    """SIGINT ignored while workers are started: an ignored signal stays ignored across exec, so
    a worker never sees the terminal's Ctrl-C, even while it still imports (its own handler is
    set only once its module runs; the driver decides and ends the workers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved)


def shutdown() -> None:
    """Stop every local worker group."""
    with _GUARD:
        groups = list(_GROUPS.values())
        _GROUPS.clear()
    for g in groups:
        g.close()


atexit.register(shutdown)
