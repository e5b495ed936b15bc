"""The driver side of a multi-process fit on one machine: spill in-memory data to
shared memory, run the job on the local group, hand rank 0's model back.
"""
from __future__ import annotations

import dataclasses
import time
import warnings

from shardlearn.runtime import group, ps_run
from shardlearn.runtime.progress import StepLog
from shardlearn.runtime.spill import Spill
from shardlearn.runtime.train import LAST_STEPS

LAST_REPORTS: list = []  # per-rank reports of the latest fit (rows, bytes, communication), for tests and metrics
LAST_RESTARTS: list = []  # restarts of the latest fit: when the failure was seen, what it was, seconds to resume


def _run(cfg, name, fault=None, slow=None, **kwargs):
    """Run the job on the local group; when a worker dies, start a fresh group and run it
    again, resuming from the newest checkpoint, up to ``cfg.max_restarts`` times."""
    LAST_RESTARTS.clear()
    while True:
        log = StepLog(None, total=cfg.max_iter)
        try:
            first = {"fault": fault} if fault is not None and not LAST_RESTARTS else {}
            if slow is not None:
                first["slow"] = slow
            results = group.get(cfg.processes).run(name, on_progress=log.show, cfg=dataclasses.asdict(cfg), **first,
                                                   **kwargs)
            break
        except group.WorkerError as e:
            if e.rank is not None and e.rank >= cfg.workers:  # a dedicated parameter-server process
                e = group.WorkerError(str(e).replace(f"worker rank {e.rank}", f"parameter-server shard "
                                                     f"{e.rank - cfg.workers} (rank {e.rank})"), e.died, e.rank)
            if not e.died or len(LAST_RESTARTS) >= cfg.max_restarts:
                raise e from None
            LAST_RESTARTS.append({"failed_at": time.time(), "error": str(e)})
            warnings.warn(f"{e}; restarting the workers ({len(LAST_RESTARTS)} of {cfg.max_restarts})"
                          + (", resuming from the newest checkpoint" if cfg.checkpoint_dir else ", from the start"),
                          RuntimeWarning, stacklevel=3)
            if cfg.checkpoint_dir:
                cfg = dataclasses.replace(cfg, resume=True)
        finally:
            log.close()
    if any(r.get("slices") for r in results):  # parameter server: the model is in the shards' slices
        results[0]["params"] = ps_run.assemble(results)
    LAST_REPORTS[:] = [r["report"] for r in results]
    LAST_STEPS[:] = results[0]["steps"]
    resumed_at = results[0]["report"].get("resumed_at", results[0]["report"].get("started_at"))
    if LAST_RESTARTS and resumed_at is not None:
        LAST_RESTARTS[-1]["restart_seconds"] = resumed_at - LAST_RESTARTS[-1]["failed_at"]
    return results[0]


def train_arrays(model, X, y, sample_weight, cfg, n_outputs, fault=None, slow=None):
    """``fault``: ``{"rank": r, "call": k}``, for fault tests: in the first attempt rank r kills
    itself with SIGKILL at its k-th gradient evaluation."""
    with Spill(X, y, sample_weight) as spec:
        out = _run(cfg, "fit_arrays", fault=fault, slow=slow, model=model.name, spill=spec, n_outputs=n_outputs)
    return out["params"], out["n_iter"]


def train_source(model_name, cfg, source: dict, positive_label=None, fault=None):
    return _run(cfg, "fit_source", fault=fault, model=model_name, source=source, positive_label=positive_label)


def train_file(model_name, cfg, source: dict, positive_label=None):
    """Train on a file where every worker reads only its shard: on the local group, or, under
    torchrun, in this process as one of torchrun's workers. Returns ``(result, per_rank)``:
    rank 0's result (None on other torchrun ranks) and each rank's ``(rows, bytes_read)``."""
    import numpy as np

    from shardlearn.runtime import job, launch

    world = launch.from_env()
    if world is None:
        out = train_source(model_name, cfg, source, positive_label=positive_label)
        return out, [(r["rows"], r.get("bytes_read", 0)) for r in LAST_REPORTS if r.get("role") != "server"]
    if world.restart_count > 0 and cfg.checkpoint_dir:  # torchrun restarted the group: continue, don't start over
        cfg = dataclasses.replace(cfg, resume=True)
    comm = launch.join_from_env()
    try:
        trainers = comm.size - cfg.servers
        out = job.fit_source(comm, model=model_name, cfg=dataclasses.asdict(dataclasses.replace(cfg, workers=trainers)),
                             source=source, positive_label=positive_label)
        mine = np.array([out["report"].get("rows", 0), out["report"].get("bytes_read", 0)], dtype=np.float64)
        per_rank = [(int(r[0]), int(r[1])) for r in comm.allgather(mine)][:trainers]
        LAST_STEPS[:] = out["steps"]
    finally:
        launch.leave()
    return (out if comm.rank == 0 else None), per_rank
