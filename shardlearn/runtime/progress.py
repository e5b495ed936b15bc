"""Per-step metrics and the driver's progress bar.

A ``StepLog`` turns each step (an L-BFGS or GD iteration, an SGD epoch) into one
record: wall time, loss, rows processed, bytes sent and received (as the collectives
counted them, and in a group as this process's TCP connections carried them,
``wire_bytes_*``: ``comm/wire.py``), the collective calls made, compute and communication
seconds (``--metrics FILE`` writes them as JSON lines). The bar is tqdm's, shown only on a
terminal and only for runs longer than two seconds.

>>> from shardlearn.comm import local
>>> comm = local()
>>> log = StepLog(comm, total=3, show=False)
>>> _ = comm.allreduce(np.ones(2)), comm.allreduce(np.ones(2)); log.step(1, 0.5); log.step(2, 0.4)
>>> [r["loss"] for r in log.records], [r["calls"] for r in log.records], sorted(log.records[0])[:3]
([0.5, 0.4], [2, 0], ['bytes_received', 'bytes_sent', 'calls'])

Each rank logs its own steps; the metrics file holds rank 0's records, each with every
rank's bytes of that step (``by_rank``; under torchrun gathered once at the end, ``gathered``):

>>> by_rank([[{"step": 1, "bytes_sent": 8, "bytes_received": 8}], [{"step": 1, "bytes_sent": 4, "bytes_received": 6}],
...          []])[0]["bytes_sent_by_rank"]
[8, 4, None]
"""
from __future__ import annotations

import time

import numpy as np

from shardlearn.comm.wire import tcp_bytes

BYTES = ("bytes_sent", "bytes_received", "wire_bytes_sent", "wire_bytes_received")
SECONDS = ("step_seconds", "compute_seconds", "comm_seconds")  # per rank too: a step waits for its slowest rank's compute


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
    """``counter``: counts the rows and seconds of the model's ``loss_and_grad`` (full-batch and
    mini-batch steps: ``rows``, ``compute_seconds``). ``outside``: the rank learns outside any
    counted call (the per-example kernel): a step's ``compute_seconds`` is then its seconds
    outside collectives, what a slower rank makes the others wait for, and no rows are counted.

    >>> from shardlearn.comm import local
    >>> log = StepLog(local(), show=False, outside=True)
    >>> log.step(1, 0.5, examples=10); rec = log.records[0]
    >>> "rows" in rec, rec["compute_seconds"] == rec["step_seconds"] - rec["comm_seconds"]
    (False, True)
    """

    def __init__(self, comm, total=None, counter: RowCounter | None = None, show=None, sink=None, outside=False):
        self.comm, self.counter, self.sink, self.records = comm, counter, sink, []
        self.outside = outside
        self.t0 = self.t_last = time.perf_counter()
        self.last_comm = comm.stats.snapshot() if comm is not None else None
        self.last_wire = tcp_bytes() if comm is not None and comm.size > 1 else None
        if comm is not None and comm.size > 1:  # each call's seconds, for the per-call wait (``by_rank``)
            comm.stats.durations = []
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
        for k in ("bytes_sent", "bytes_received", "comm_seconds", "calls"):  # calls: collectives, each paying a latency
            rec[k] = snap.get(k, 0) - (self.last_comm or {}).get(k, 0)
        if self.last_wire is not None:
            wire = tcp_bytes()
            rec["wire_bytes_sent"], rec["wire_bytes_received"] = wire[0] - self.last_wire[0], wire[1] - self.last_wire[1]
            self.last_wire = wire
        if self.counter is not None:
            rec["rows"] = self.counter.rows - self.last_rows
            rec["compute_seconds"] = self.counter.seconds - self.last_compute
            self.last_rows, self.last_compute = self.counter.rows, self.counter.seconds
        elif self.outside:
            rec["compute_seconds"] = max(rec["step_seconds"] - rec["comm_seconds"], 0.0)
        if self.comm is not None and self.comm.size > 1 and self.comm.stats.durations is not None:
            rec["call_seconds"] = list(self.comm.stats.durations)  # this step's calls, in order
            self.comm.stats.durations.clear()
        self.last_comm, self.t_last = snap, now
        self.records.append(rec)
        if self.sink is not None:
            self.sink({k: v for k, v in rec.items() if k != "call_seconds"})
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


def by_rank(steps_of: list[list[dict]]) -> list[dict]:
    """Rank 0's step records (``steps_of[0]``), each with every rank's own bytes of the same
    step: ``bytes_sent_by_rank``, ``bytes_received_by_rank`` and, measured, ``wire_bytes_*_by_rank``,
    and its seconds (``step_seconds_by_rank``, ``compute_seconds_by_rank``, ``comm_seconds_by_rank``:
    each on the rank's own clock; a rank's communication seconds include waiting for a slower
    one's compute, so compare them with its own step seconds, not rank 0's): lists by rank, None for
    a rank that logged no such step (a parameter-server shard: its bytes are not per step).

    ``transfer_seconds``: the step's collectives without the waiting, where every rank timed
    the same calls (``call_seconds``, which the output leaves out): each call's shortest
    duration over the ranks, summed. The rank that reached a collective last waited for
    nobody, so its duration is the call's transfer; a step's slowest rank can change from one
    call to the next, which a per-step difference of compute seconds cannot see.

    >>> by_rank([[{"step": 1, "comm_seconds": 0.52, "call_seconds": [0.5, 0.02]}],
    ...          [{"step": 1, "comm_seconds": 0.34, "call_seconds": [0.01, 0.33]}]])[0]["transfer_seconds"]
    0.03
    """
    index = [{r["step"]: r for r in steps} for steps in steps_of]
    out = []
    for rec in steps_of[0]:
        theirs = [ix.get(rec["step"]) for ix in index]
        row = dict(rec, **{f"{k}_by_rank": [None if t is None else t.get(k) for t in theirs]
                           for k in BYTES + SECONDS if k in rec})
        row.pop("call_seconds", None)
        calls = [None if t is None else t.get("call_seconds") for t in theirs]
        if len(calls) > 1 and all(c is not None for c in calls) and len({len(c) for c in calls}) == 1:
            row["transfer_seconds"] = float(np.min(np.array(calls, dtype=np.float64), axis=0).sum()) if calls[0] else 0.0
        out.append(row)
    return out


def gathered(comm, steps: list[dict]) -> list[list[dict]]:
    """Every rank's step numbers, bytes (``BYTES``) and seconds (``SECONDS``), by rank (a
    collective: all ranks call it, once, at the end of a run); this rank's own records come
    back whole."""
    keys = BYTES + SECONDS
    # a row a step: its number, its figures, and how many call durations it timed (-1: none)
    mine = np.array([[r["step"]] + [r.get(k, 0) for k in keys] + [len(r["call_seconds"]) if "call_seconds" in r else -1]
                     for r in steps],
                    dtype=np.float64).reshape(-1, 2 + len(keys))
    calls = np.concatenate([np.zeros(0)] + [np.asarray(r["call_seconds"], dtype=np.float64) for r in steps
                                            if "call_seconds" in r])
    lengths = [(int(n[0]), int(n[1])) for n in comm.allgather(np.array([float(len(mine)), float(len(calls))]))]
    padded = np.zeros((max(n for n, _ in lengths), mine.shape[1]))
    padded[:len(mine)] = mine
    timed = np.zeros(max(1, *(m for _, m in lengths)))  # gloo gathers no empty buffers
    timed[:len(calls)] = calls
    out = []
    for rows, flat, (n, _) in zip(comm.allgather(padded), comm.allgather(timed), lengths):
        recs, at = [], 0
        for row in rows[:n]:
            rec = dict(step=int(row[0]), **{k: int(v) if k in BYTES else float(v) for k, v in zip(keys, row[1:-1])})
            if row[-1] >= 0:
                rec["call_seconds"] = flat[at:at + int(row[-1])].tolist()
                at += int(row[-1])
            recs.append(rec)
        out.append(recs)
    out[comm.rank] = steps
    return out
