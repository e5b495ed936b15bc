"""What a rank started by another engine (Dask, Ray) runs: join the job's gloo group through
the store its driver hosts, pin this process's thread pools to its share of the cores, run a
job of ``runtime.job`` (the same entry point as the local group's workers), and leave the
group so the engine's process can host the next job.

Thread pools: BLAS and OpenMP (threadpoolctl), numba and torch are limited to
``threads`` per rank, so N ranks on one machine do not each start a pool per core (Ray
users saw 38x slowdowns from that).
"""
from __future__ import annotations

import os
import socket

import numpy as np

from shardlearn.runtime import launch


def driver_address(peer: str | None = None) -> str:
    """The address the ranks reach this driver at: the interface that routes to ``peer`` (an
    engine's scheduler, ``tcp://host:port``), else 127.0.0.1."""
    if not peer:
        return "127.0.0.1"
    host = peer.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    if host in ("127.0.0.1", "localhost", "::1"):
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))  # no packet is sent: this only asks the kernel for the route
        return s.getsockname()[0]


def pin_threads(threads: int) -> dict:
    """Limit this process's thread pools to ``threads``; what each is now."""
    from threadpoolctl import threadpool_limits

    threads = max(1, int(threads))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    threadpool_limits(threads)
    from shardlearn.kernels.threads import set_threads

    out = {"blas_openmp": threads, "numba": set_threads(threads)}
    import torch

    torch.set_num_threads(threads)
    out["torch"] = torch.get_num_threads()
    return out


def run_rank(rank: int, size: int, addr: str, port: int, prefix: str, job: str, threads: int = 1,
             timeout_s: float = 60.0, host_store: bool | None = False, **kwargs) -> dict:
    """Rank ``rank`` of ``size``: join, pin threads, run ``runtime.job.JOBS[job]``, leave. The
    job's result gets ``threads`` (the pools' sizes) in its report. ``host_store``: False when
    the driver hosts the rendezvous store, None when rank 0 does (at ``addr``)."""
    from shardlearn.runtime.job import JOBS

    comm = launch.join(rank, size, port, prefix, timeout_s=timeout_s, addr=addr, host_store=host_store)
    try:
        pools = pin_threads(threads)  # after joining: the collective sets torch's own count
        out = JOBS[job](comm, **kwargs)
        out["report"] = dict(out.get("report", {}), threads=pools)
        return out
    finally:
        launch.leave()


def settings(estimator, classes, workers: int) -> dict:
    """What every rank of an engine's fit needs from ``estimator`` (one of shardlearn's linear
    estimators): its model's name, its ``TrainConfig`` for ``workers`` ranks (a dict), the
    ``classes`` (the distinct labels, classifiers; None for regression) and outputs. Sets the
    estimator's ``classes_`` as its own fit would."""
    import dataclasses

    labels = np.zeros(1) if classes is None else np.asarray(classes)
    _, model, n_outputs = estimator._encode_y(labels, np.ones(labels.size))
    cfg = dataclasses.asdict(dataclasses.replace(estimator.train_config(), workers=int(workers)))
    return {"model": model.name, "cfg": cfg, "n_outputs": int(n_outputs),
            "classes": None if classes is None else labels.tolist()}


def fit_result(outs: list, job: dict, n_features: int):
    """One ``FitResult`` from every rank's job output (rank order): rank 0's model, every report;
    a stochastic fit whose steps overshot says so (``result.check_fit``)."""
    from shardlearn import models
    from shardlearn.runtime.config import TrainConfig
    from shardlearn.runtime.result import FitResult, check_fit

    first = outs[0]
    params = {k: np.asarray(v) for k, v in first["params"].items()}
    result = FitResult(params, int(first["n_iter"]), steps=first.get("steps", []), reports=[o["report"] for o in outs],
                       info={"classes": job["classes"], "n_features": int(n_features)})
    check_fit(result, models.get(job["model"]), job["n_outputs"], TrainConfig(**job["cfg"]))
    return result
