"""The driver side of a multi-process fit on one machine: spill in-memory data to
shared memory, run the job on the local group, hand rank 0's model back.
"""
from __future__ import annotations

import dataclasses

from shardlearn.runtime import group
from shardlearn.runtime.spill import Spill

LAST_REPORTS: list = []  # per-rank reports of the latest fit (rows, bytes, communication), for tests and metrics


def train_arrays(model, X, y, sample_weight, cfg, n_outputs):
    with Spill(X, y, sample_weight) as spec:
        results = group.get(cfg.workers).run("fit_arrays", model=model.name, cfg=dataclasses.asdict(cfg), spill=spec,
                                             n_outputs=n_outputs)
    LAST_REPORTS[:] = [r["report"] for r in results]
    return results[0]["params"], results[0]["n_iter"]


def train_source(model_name, cfg, source: dict, positive_label=None):
    results = group.get(cfg.workers).run("fit_source", model=model_name, cfg=dataclasses.asdict(cfg), source=source,
                                         positive_label=positive_label)
    LAST_REPORTS[:] = [r["report"] for r in results]
    return results[0]
