"""A local worker process: ``python -m shardlearn.runtime.worker RANK SIZE PORT PREFIX DRIVER_PORT``.

Started by the local group with its own interpreter (no fork of the driver and no
re-import of the user's script), it joins the gloo group, connects back to the
driver, and runs the jobs it is sent until told to stop. A job is one of
``runtime.job.JOBS`` or ``"package.module:function"``, any function of the form
``f(comm, *, progress, **kwargs)`` importable on the workers (they see the driver's
``sys.path``): tests and benchmarks bring their own jobs that way.
"""
from __future__ import annotations

import importlib
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Client

from shardlearn.runtime import launch


def main(argv=None) -> int:
    rank, size, port, prefix, driver_port = (argv or sys.argv[1:])[:5]
    rank, size, port, driver_port = int(rank), int(size), int(port), int(driver_port)
    # Ctrl-C reaches every process of the terminal's group: the driver decides, and ends the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_driver()
    try:
        conn = Client(("127.0.0.1", driver_port), authkey=launch.driver_authkey())
    except (OSError, EOFError):  # the driver ended before this worker could call back: nobody to work for
        _orphaned()
    send = _sender(conn)
    send(("hello", rank, None))
    try:
        comm = launch.join(rank, size, port, prefix)
    except Exception as e:  # noqa: BLE001 - reported to the driver, which may retry on another port
        send(("error", (type(e).__name__, str(e)), traceback.format_exc()))
        return 1
    send(("ready", None, None))
    from shardlearn.runtime import job

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the driver died between jobs (a clean stop sends None)
            _orphaned()
        if msg is None:
            break
        name, kwargs = msg
        try:
            progress = (lambda rec: send(("progress", rec, None))) if rank == 0 else None
            send(("ok", _job(job.JOBS, name)(comm, progress=progress, **kwargs), None))
        except BaseException as e:  # noqa: BLE001 - every failure goes back to the driver
            send(("error", (type(e).__name__, str(e)), traceback.format_exc()))
    launch.leave()
    return 0


def _sender(conn):
    """``send(message)`` to the driver; when the driver is gone there is nobody to report to:
    the worker ends at once and quietly (no BrokenPipe traceback)."""

    def send(message):
        try:
            conn.send(message)
        except (OSError, EOFError):
            _orphaned()

    return send


def _orphaned() -> None:
    """The driver is gone: remove the group's shared files (the driver can no longer) and end."""
    scratch = os.environ.get(launch.SCRATCH_VAR)
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    os._exit(0)


def _exit_with_driver(period_s: float = 0.5) -> None:
    """End this worker quietly when its driver dies (SIGKILL, a crash), even mid-job, removing
    the group's shared files, which the driver can no longer remove."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(period_s)
        _orphaned()

    threading.Thread(target=watch, daemon=True).start()


def _job(known: dict, name: str):
    if ":" not in name:
        return known[name]
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


if __name__ == "__main__":
    sys.exit(main())
