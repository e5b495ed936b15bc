"""Per-step metrics and the driver's progress bar.

A ``StepLog`` turns each step (an L-BFGS or GD iteration, an SGD epoch) into one
record: wall time, loss, rows processed, bytes sent and received, compute and
communication seconds (``--metrics FILE`` writes them as JSON lines). The bar is
tqdm's, shown only on a terminal and only for runs longer than two seconds.

>>> from shardlearn.comm import local
>>> log = StepLog(local(), total=3, show=False)
>>> log.step(1, 0.5); log.step(2, 0.4)
>>> [r["loss"] for r in log.records], sorted(log.records[0])[:3]
([0.5, 0.4], ['bytes_received', 'bytes_sent', 'comm_seconds'])
"""
from __future__ import annotations

import time


class RowCounter:
    """Wraps a model's ``loss_and_grad`` to count rows and compute seconds."""

    def __init__(self, model):
        self.rows, self.seconds = 0, 0.0
        inner = model.loss_and_grad

        def loss_and_grad(params, X, y, sample_weight=None):
            t = time.perf_counter()
            out = inner(params, X, y, sample_weight)
            self.seconds += time.perf_counter() - t
            self.rows += X.shape[0]
            return out

        self.model = model._replace(loss_and_grad=loss_and_grad)


class StepLog:
    def __init__(self, comm, total=None, counter: RowCounter | None = None, show=None, sink=None):
        self.comm, self.counter, self.sink, self.records = comm, counter, sink, []
        self.t0 = self.t_last = time.perf_counter()
        self.last_comm = comm.stats.snapshot() if comm is not None else None
        self.last_rows, self.last_compute = 0, 0.0
        self.bar = None
        if show is not False:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="step", delay=2.0, disable=None, leave=False)
            except ImportError:
                self.bar = None

    def step(self, it: int, loss: float, examples: int | None = None) -> None:
        """Record step ``it``; ``examples``: rows that contributed to it over all workers
        (an SGD epoch's count, exact across restarts; a full-batch pass's row count)."""
        now = time.perf_counter()
        rec = {"step": int(it), "time": now - self.t0, "step_seconds": now - self.t_last, "loss": float(loss)}
        if examples is not None:
            rec["examples"] = int(examples)
        snap = self.comm.stats.snapshot() if self.comm is not None else {}
        for k in ("bytes_sent", "bytes_received", "comm_seconds"):
            rec[k] = snap.get(k, 0) - (self.last_comm or {}).get(k, 0)
        if self.counter is not None:
            rec["rows"] = self.counter.rows - self.last_rows
            rec["compute_seconds"] = self.counter.seconds - self.last_compute
            self.last_rows, self.last_compute = self.counter.rows, self.counter.seconds
        self.last_comm, self.t_last = snap, now
        self.records.append(rec)
        if self.sink is not None:
            self.sink(rec)
        self.show(rec)

    def show(self, rec) -> None:
        if self.bar is not None:
            rows = rec.get("rows") or rec.get("examples", 0)  # parameter server: every worker's rows
            rate = rows / rec["step_seconds"] if rec["step_seconds"] > 0 else 0.0
            self.bar.set_postfix(loss=f"{rec['loss']:.6g}", rows_s=f"{rate:,.0f}", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
