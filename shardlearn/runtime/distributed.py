"""The driver side of a multi-process fit on one machine: spill in-memory data to
shared memory, run the job on the local group, hand rank 0's model back.
"""
from __future__ import annotations

import dataclasses

from shardlearn.runtime import group
from shardlearn.runtime.progress import StepLog
from shardlearn.runtime.spill import Spill
from shardlearn.runtime.train import LAST_STEPS

LAST_REPORTS: list = []  # per-rank reports of the latest fit (rows, bytes, communication), for tests and metrics


def _run(cfg, name, **kwargs):
    log = StepLog(None, total=cfg.max_iter)
    try:
        results = group.get(cfg.workers).run(name, on_progress=log.show, cfg=dataclasses.asdict(cfg), **kwargs)
    finally:
        log.close()
    LAST_REPORTS[:] = [r["report"] for r in results]
    LAST_STEPS[:] = results[0]["steps"]
    return results[0]


def train_arrays(model, X, y, sample_weight, cfg, n_outputs):
    with Spill(X, y, sample_weight) as spec:
        out = _run(cfg, "fit_arrays", model=model.name, spill=spec, n_outputs=n_outputs)
    return out["params"], out["n_iter"]


def train_source(model_name, cfg, source: dict, positive_label=None):
    return _run(cfg, "fit_source", model=model_name, source=source, positive_label=positive_label)


def train_file(model_name, cfg, source: dict, positive_label=None):
    """Train on a file where every worker reads only its shard: on the local group, or, under
    torchrun, in this process as one of torchrun's workers. Returns ``(result, per_rank)``:
    rank 0's result (None on other torchrun ranks) and each rank's ``(rows, bytes_read)``."""
    import dataclasses

    import numpy as np

    from shardlearn.runtime import job, launch

    if launch.from_env() is None:
        out = train_source(model_name, cfg, source, positive_label=positive_label)
        return out, [(r["rows"], r.get("bytes_read", 0)) for r in LAST_REPORTS]
    comm = launch.join_from_env()
    try:
        out = job.fit_source(comm, model=model_name, cfg=dataclasses.asdict(dataclasses.replace(cfg, workers=comm.size)),
                             source=source, positive_label=positive_label)
        mine = np.array([out["report"]["rows"], out["report"].get("bytes_read", 0)], dtype=np.float64)
        per_rank = [(int(r[0]), int(r[1])) for r in comm.allgather(mine)]
        LAST_STEPS[:] = out["steps"]
    finally:
        launch.leave()
    return (out if comm.rank == 0 else None), per_rank
