"""The driver side of a multi-process fit on one machine: spill in-memory data to
shared memory, run the job on the local group (restarting it after a worker dies),
and hand back one ``FitResult`` with rank 0's model, every rank's report and the
restarts.
"""
from __future__ import annotations

import dataclasses
import time
import warnings

from shardlearn.core.errors import rebuild
from shardlearn.runtime import group, launch
from shardlearn.runtime.progress import StepLog, by_rank, gathered
from shardlearn.runtime.result import FitResult, check_fit
from shardlearn.runtime.spill import Spill


def run_job(cfg, name, progress=None, **kwargs) -> FitResult:
    """Run job ``name`` (``runtime.job.JOBS`` or ``"module:function"``) with ``cfg`` on the local
    group; when a worker dies, start a fresh group and run it again, resuming from the newest
    checkpoint, up to ``cfg.max_restarts`` times. ``progress(record)`` sees rank 0's step
    records as they arrive. Returns rank 0's result with every rank's report and the restarts."""
    cfg.validate()  # every option, before any worker starts (a bad one is a one-line error, not a worker's)
    launch.check_local(cfg.processes)  # more workers than the machine can run: fail now, not after minutes
    restarts: list = []
    while True:
        log = StepLog(None, total=cfg.max_iter)

        def show(record, log=log):
            log.show(record)
            if progress is not None:
                progress(record)

        try:
            with group.lease(cfg.processes) as workers:
                results = workers.run(name, on_progress=show, cfg=dataclasses.asdict(cfg), **kwargs)
            break
        except group.WorkerError as e:
            mine = rebuild(*e.cause) if e.cause else None
            if mine is not None:  # bad data or settings, found by a worker: the same error as in one process
                raise mine from None
            if e.rank is not None and e.rank >= cfg.workers:  # a dedicated parameter-server process
                e = group.WorkerError(str(e).replace(f"worker rank {e.rank}", f"parameter-server shard "
                                                     f"{e.rank - cfg.workers} (rank {e.rank})"), e.died, e.rank)
            if not e.died or len(restarts) >= cfg.max_restarts:
                raise e from None
            restarts.append({"failed_at": time.time(), "error": str(e)})
            warnings.warn(f"{e}; restarting the workers ({len(restarts)} of {cfg.max_restarts})"
                          + (", resuming from the newest checkpoint" if cfg.checkpoint_dir else ", from the start"),
                          RuntimeWarning, stacklevel=3)
            if cfg.checkpoint_dir:
                cfg = dataclasses.replace(cfg, resume=True)
        finally:
            log.close()
    return _result(results, restarts)


def run_here(cfg, name, progress=None, **kwargs) -> FitResult:
    """Run job ``name`` in this process as the only worker (no group to start): the same code,
    checks and errors as on the group."""
    from shardlearn.comm.base import LocalCollective
    from shardlearn.runtime import job

    cfg.validate()
    log = StepLog(None, total=cfg.max_iter)

    def show(record):
        log.show(record)
        if progress is not None:
            progress(record)

    try:
        out = job.JOBS[name](LocalCollective(), progress=show, cfg=dataclasses.asdict(cfg), **kwargs)
    finally:
        log.close()
    return _result([out], [])


def _result(results, restarts) -> FitResult:
    """One ``FitResult`` from every rank's output: rank 0's model, every rank's report."""
    if any(r.get("slices") for r in results):  # parameter server: the model is in the shards' slices
        from shardlearn.runtime import ps_run  # here: it imports torch's RPC (~1 s), which a launcher needs nowhere else

        results[0]["params"] = ps_run.assemble(results)
    first = results[0]
    if any("part" in r for r in results):  # a model partitioned by worker: every rank's part, by rank
        first["parts"] = [r.pop("part", None) for r in results]
    resumed_at = first["report"].get("resumed_at", first["report"].get("started_at"))
    if restarts and resumed_at is not None:
        restarts[-1]["restart_seconds"] = resumed_at - restarts[-1]["failed_at"]
    return FitResult(first["params"], int(first["n_iter"]), steps=by_rank([r["steps"] for r in results]),
                     reports=[r["report"] for r in results], restarts=restarts,
                     info={k: v for k, v in first.items() if k not in ("params", "n_iter", "steps", "report")})


def train_arrays(model, X, y, sample_weight, cfg, n_outputs, progress=None) -> FitResult:
    """Train on in-memory arrays over the local group (each worker maps its rows from shared
    memory). ``progress(record)`` sees rank 0's step records as they happen."""
    with Spill(X, y, sample_weight) as spec:
        return run_job(cfg, "fit_arrays", progress=progress, model=model.name, spill=spec, n_outputs=n_outputs)


def train_file(model_name, cfg, source: dict, positive_label=None, progress=None) -> FitResult:
    """Train on a file where every worker reads only its shard: on the local group, or, under
    torchrun, in this process as one of torchrun's workers. Rank 0's facts of the file
    (classes, n_features, encoder, skipped rows...) are in ``result.info``; ``params`` is None
    on torchrun ranks other than 0."""
    from shardlearn import models

    cfg.validate()
    result = _train_file(model_name, cfg, source, positive_label, progress)
    if result.params is not None:
        classes = result.info.get("classes")
        model = models.get(model_name)
        check_fit(result, model, model.n_outputs(len(classes)) if classes is not None else 1, cfg)
    return result


def _train_file(model_name, cfg, source, positive_label, progress) -> FitResult:
    import numpy as np

    world = launch.from_env()
    if world is None:
        run = run_job if cfg.on_group else run_here
        return run(cfg, "fit_source", progress=progress, model=model_name, source=source,
                   positive_label=positive_label)
    from shardlearn.runtime import job  # a torchrun rank runs the job itself; a launcher never imports it (torch, ~1 s)

    if world.restart_count > 0 and cfg.checkpoint_dir:  # torchrun restarted the group: continue, don't start over
        cfg = dataclasses.replace(cfg, resume=True)
    comm = launch.join_from_env()
    try:
        trainers = comm.size - cfg.servers
        out = job.fit_source(comm, model=model_name, cfg=dataclasses.asdict(dataclasses.replace(cfg, workers=trainers)),
                             source=source, positive_label=positive_label)
        mine = np.array([out["report"].get("rows", 0), out["report"].get("bytes_read", 0)], dtype=np.float64)
        reports = [{"rank": r, "rows": int(v[0]), "bytes_read": int(v[1])}
                   for r, v in enumerate(comm.allgather(mine))][:trainers]
        if comm.rank < trainers:  # this rank knows its whole report (resumed_from, bytes, ...)
            reports[comm.rank] = dict(out["report"], **reports[comm.rank])
        steps = by_rank(gathered(comm, out["steps"]))
    finally:
        launch.leave()
    info = {k: v for k, v in out.items() if k not in ("params", "n_iter", "steps", "report")}
    return FitResult(out["params"] if comm.rank == 0 else None, int(out["n_iter"]), steps=steps,
                     reports=reports, info=info)
