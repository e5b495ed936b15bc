"""What one worker does in a distributed fit, whoever started it (the local group
or torchrun): open the data, take its shard, agree on the preconditioner and
classes with the others, train, and report what it read.
"""
from __future__ import annotations

import json
import time

import numpy as np

from shardlearn import models
from shardlearn.data import partition as partitioners
from shardlearn.runtime.spill import open_spec
from shardlearn.runtime.train import TrainConfig, train_local


def _rows(cfg: TrainConfig, comm, n, labels=None):
    return partitioners.rows_for(cfg.partition, comm.size, comm.rank, n=n, seed=cfg.random_state or 0, labels=labels)


def fit_arrays(comm, *, model: str, cfg: dict, spill: dict, n_outputs: int):
    """Train on this worker's rows of spilled (memory-mapped) arrays."""
    cfg = TrainConfig(**cfg)
    X, y, sw = open_spec(spill)
    rows = _rows(cfg, comm, X.shape[0], labels=np.asarray(y) if cfg.partition == "stratified" else None)
    Xs, ys = X[rows], np.asarray(y[rows])
    sws = None if sw is None else np.asarray(sw[rows])
    return _train(comm, model, cfg, Xs, ys, sws, n_outputs, rows=len(rows))


def _train(comm, model, cfg, X, y, sw, n_outputs, **facts):
    comm.barrier()
    before = comm.stats.snapshot()
    t = time.perf_counter()
    params, n_iter, _ = train_local(models.get(model), X, y, sw, cfg, n_outputs, comm=comm)
    after = comm.stats.snapshot()
    report = {k: after[k] - before[k] for k in after}
    report.update(facts, fit_seconds=time.perf_counter() - t, rank=comm.rank)
    return {"params": params if comm.rank == 0 else None, "n_iter": int(n_iter), "report": report}


def union(comm, values) -> list:
    """The sorted union of every worker's ``values`` (labels, categories), by allgather."""
    local = sorted({v.item() if hasattr(v, "item") else v for v in values}, key=lambda v: (str(type(v)), v))
    blob = np.frombuffer(json.dumps(local).encode(), dtype=np.uint8)
    width = int(comm.allreduce(np.array([blob.size], dtype=np.float64), op="max")[0])
    padded = np.zeros(width + 8, dtype=np.uint8)
    padded[:8] = np.frombuffer(np.int64(blob.size).tobytes(), dtype=np.uint8)
    padded[8 : 8 + blob.size] = blob
    merged = set()
    for part in comm.allgather(padded):
        n = int(np.frombuffer(part[:8].tobytes(), dtype=np.int64)[0])
        merged.update(json.loads(part[8 : 8 + n].tobytes().decode()))
    return sorted(merged, key=lambda v: (str(type(v)), v))


def fit_source(comm, *, model: str, cfg: dict, source: dict, positive_label=None):
    """Train on this worker's shard of a file (CLI, torchrun): only the shard is read."""
    from shardlearn.data import open as open_source

    cfg = TrainConfig(**cfg)
    src = open_source(**source)
    shard = src.shard(comm.size, comm.rank, cfg.partition, cfg.random_state or 0)
    X, y = shard.read()
    y = np.asarray(y)
    if positive_label is not None:
        from shardlearn.data.labels import numeric_labels

        y = (numeric_labels(y.astype(str)).astype(str) == str(numeric_labels([positive_label])[0])).astype(np.int64)
    task = models.get(model).task
    classes = None
    if task == "classification":
        classes = union(comm, np.unique(y))
        codes = np.searchsorted(np.asarray(classes), y)
        n_outputs = models.get(model).n_outputs(len(classes))
    else:
        codes, n_outputs = y.astype(np.float64), 1
    out = _train(comm, model, cfg, X, codes, None, n_outputs, rows=int(X.shape[0]),
                 bytes_read=int(getattr(src, "bytes_read", 0)), source_rows=int(src.n_rows))
    out["classes"] = classes
    out["n_features"] = int(src.n_features)
    out["encoder"] = src.encoder.to_json() if hasattr(src, "encoder") else None
    out["zero_based"] = getattr(src, "zero_based", None)
    out["skipped"] = dict(src.skipped)
    return out


def ping(comm, *, fail_rank=None, die_rank=None):
    """For tests: one allreduce; a chosen rank raises or exits abruptly."""
    import os

    if comm.rank == fail_rank:
        raise ValueError("deliberate failure")
    if comm.rank == die_rank:
        os._exit(17)
    return float(comm.allreduce(np.array([1.0]))[0])


JOBS = {"fit_arrays": fit_arrays, "fit_source": fit_source, "ping": ping}
