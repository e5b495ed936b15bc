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
import sys
import traceback
from multiprocessing.connection import Client

from shardlearn.runtime import launch


def main(argv=None) -> int:
    rank, size, port, prefix, driver_port = (argv or sys.argv[1:])[:5]
    rank, size, port, driver_port = int(rank), int(size), int(port), int(driver_port)
    conn = Client(("127.0.0.1", driver_port), authkey=launch.driver_authkey())
    conn.send(("hello", rank, None))
    try:
        comm = launch.join(rank, size, port, prefix)
    except Exception as e:  # noqa: BLE001 - reported to the driver, which may retry on another port
        conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))
        return 1
    conn.send(("ready", None, None))
    from shardlearn.runtime import job

    while True:
        try:
            msg = conn.recv()
        except EOFError:
            break
        if msg is None:
            break
        name, kwargs = msg
        try:
            progress = (lambda rec: conn.send(("progress", rec, None))) if rank == 0 else None
            conn.send(("ok", _job(job.JOBS, name)(comm, progress=progress, **kwargs), None))
        except BaseException as e:  # noqa: BLE001 - every failure goes back to the driver
            conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))
    launch.leave()
    return 0


def _job(known: dict, name: str):
    if ":" not in name:
        return known[name]
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


if __name__ == "__main__":
    sys.exit(main())
