"""Learning one stream with N learner processes over the parameter server (``shardlearn learn
SOURCE --workers N --strategy asp|ssp``).

Each learner is a process of a local worker group that also hosts one shard of the model's
kernel state (``ps/kernel_shard.py``: weight, adaptive sum, scale and penalty clock of every
hashed feature, the intercept and the kernel's scalars). It reads its own part of the source
(Redis Streams: consumer ``C-<rank>`` of the group, so the broker deals the entries out;
a file: every N-th line, ``sources.LineShare``), and for each batch of ``batch_size`` rows it
pulls the rows of state the batch touches, runs the per-example kernel over the batch
(scoring each example first: progressive validation), and pushes the change, which the
shards merge (asynchronous SGD over a parameter server: Dean et al. 2012, "Large Scale
Distributed Deep Networks"; Li et al. 2014, "Scaling Distributed Machine Learning with the
Parameter Server"). ``asp``: nobody waits; ``ssp``: a learner waits while it is more than
``staleness`` blocks ahead of the slowest (Ho et al. 2013).

Exactly once: the learners agree through the clock table (``ps/rounds.py``) on the block at
which all of them checkpoint, and checkpoint there together (every change pushed and applied,
then each shard's state and each learner's position, progress and skip counts in one
checkpoint, committed by rank 0's atomic rename); Redis entries are acknowledged only after
that. A run killed at any moment resumes from the last checkpoint, each learner from its own
position, so every example is applied exactly once. A restart must use the same number of
learners (the checkpoint says how many wrote it). Stopping (SIGINT/SIGTERM, the end of a
file, ``--stop-when-idle``) is a last round of the same kind; then rank 0 saves the online
estimator assembled from that checkpoint's shard files, which ``shardlearn.load`` gives back.

>>> # starts processes: see tests/test_learn_group.py
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from urllib.parse import parse_qs, urlencode, urlparse

import numpy as np

from shardlearn.core.errors import ConfigError, DivergedError, rebuild
from shardlearn.online import formats, snapshot, sources
from shardlearn.online.estimators import ONLINE_ESTIMATORS
from shardlearn.online.learn import fingerprint, learn_progressively, parsed_ahead, reading, setting, stop_on_signals
from shardlearn.online.progress import Progress
from shardlearn.ps import host
from shardlearn.ps.client import Client
from shardlearn.ps.slicer import make as make_slicer
from shardlearn.runtime import group as local_group
from shardlearn.runtime import launch
from shardlearn.runtime import ps_run
from shardlearn.runtime.checkpoint import Checkpointer, parse_every
from shardlearn.strategies.ps_online import Learner

STRATEGIES = ("asp", "ssp")
WAIT_S = 0.05  # how long a learner waits for its next block before it ticks idle


def learn_group(source: str, estimator, *, workers: int, strategy: str = "asp", staleness: int = 2,
                batch_size: int = 4096, fmt: str, model_dir: str, checkpoint_every=None, on_bad_row: str = "error",
                follow: bool = False, stop_when_idle: float | None = None, show_progress: bool = False,
                label: str | None = None, positive: str | None = None, holdout_every: int | None = None,
                block_bytes: int = sources.BLOCK_BYTES, serve: dict | None = None) -> dict:
    """Learn ``estimator`` (its settings; the model is built on the shards) from ``source`` with
    ``workers`` learner processes; the options are ``learn``'s. ``serve``: ``LearnServing``'s
    options (``online/serve.py``): learner 0 serves predictions from the state it pulls from every
    shard at least every ``serve["staleness_s"]`` seconds, and learns the delayed labels.
    Returns the run's summary (the learners' metrics together, and ``per_worker``)."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy {strategy!r}: stream learners run asp or ssp")
    if not (isinstance(workers, int) and workers >= 1):
        raise ConfigError(f"--workers must be an integer >= 1, got {workers!r}")
    if source == "-" or source.startswith("tcp://"):
        raise ConfigError(f"{source}: several learners need a file (each takes every N-th line) or a Redis stream "
                          "(each a consumer of the group)")
    if not (isinstance(batch_size, int) and batch_size >= 1) or not (isinstance(staleness, int) and staleness >= 0):
        raise ConfigError(f"--batch-size must be >= 1 and --staleness >= 0, got {batch_size!r} and {staleness!r}")
    if holdout_every is not None and holdout_every < 2:
        raise ConfigError(f"--holdout-every must be at least 2, got {holdout_every}")
    parse_every(checkpoint_every)  # a bad value fails here, not on every worker
    if not source.startswith("redis://"):
        sources.FileSource(source)  # a missing file: one clear error before any process starts
    job = dict(source=source, kind=type(estimator).__name__, params=estimator.get_params(), fmt=fmt,
               model_dir=os.path.abspath(model_dir), strategy=strategy, staleness=staleness, batch_size=batch_size,
               checkpoint_every=checkpoint_every, on_bad_row=on_bad_row, follow=follow, stop_when_idle=stop_when_idle,
               show_progress=show_progress, label=label, positive=positive, holdout_every=holdout_every,
               block_bytes=block_bytes, serve=serve)
    launch.check_local(workers)
    try:
        with local_group.lease(workers) as g, _forwarding_signals(g.pids):
            results = g.run("shardlearn.online.learn_group:learner", **job)
    except local_group.WorkerError as e:
        mine = rebuild(*e.cause) if e.cause else None
        if mine is not None:  # bad data or settings, found by a learner: the same error as in one process
            raise mine from None
        raise
    out = _summary(results, estimator.loss, model_dir, strategy, holdout_every)
    if serve is not None:
        out["serving"] = results[0]["serving"]
    return out


@contextlib.contextmanager
def _forwarding_signals(pids):
    """SIGINT/SIGTERM to the driver become SIGTERM to every learner, which finishes its block,
    takes part in the last checkpoint and ends (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(*_):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _summary(results: list, loss: str, model_dir: str, strategy: str, holdout_every) -> dict:
    progress = Progress.combined(loss, [(r["progress"], r["hist"]) for r in results])
    resumed = sum(r["resumed"] for r in results)
    seconds = max(r["seconds"] for r in results)
    skipped = sum((Counter(r["skipped"]) for r in results), Counter())
    out = dict(progress.summary(seconds, since=resumed), skipped=dict(skipped), model_dir=model_dir,
               resumed_from_example=resumed, stopped_by_signal=any(r["stopped"] for r in results),
               position=[r["position"] for r in results], workers=len(results), strategy=strategy,
               per_worker=[{"examples": r["progress"]["examples"],
                            "examples_per_s": (r["progress"]["examples"] - r["resumed"]) / max(r["seconds"], 1e-9)}
                           for r in results])
    if holdout_every:
        held = Progress.combined(loss, [(r["holdout"], r["hist_holdout"]) for r in results])
        out.update({f"holdout_{k}": v for k, v in held.summary(1.0).items() if k not in ("examples_per_s", "weight")})
    return out


def _own_source(source: str, rank: int, workers: int, follow: bool, block_bytes: int, fmt: str):
    """This learner's part of ``source``: a consumer of its own in the Redis group, or its lines of the file."""
    if source.startswith("redis://"):
        if workers > 1:
            u = urlparse(source)
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            q["consumer"] = f"{q.get('consumer', 'learner')}-{rank}"
            source = u._replace(query=urlencode(q)).geturl()
        return sources.open_source(source)
    src = sources.FileSource(source, follow=follow, block_bytes=block_bytes)
    return sources.LineShare(src, workers, rank, from_line=2 if fmt == "csv" else 1)


def learner(comm, *, progress=None, source, kind, params, fmt, model_dir, strategy, staleness, batch_size,
            checkpoint_every, on_bad_row, follow, stop_when_idle, show_progress, label, positive, holdout_every,
            block_bytes, serve=None) -> dict:
    """One learner of the group (a job of ``runtime/worker.py``)."""
    est = ONLINE_ESTIMATORS[kind](**params)
    rank, n, d = comm.rank, comm.size, 1 << est.hash_bits
    opts = est.kernel_options
    _, ctx = ps_run.enter(comm, SimpleNamespace(workers=n, servers=0))
    slicer = make_slicer("range", d + 2, len(ctx.hosts))  # keys: the features, the intercept, the scalars
    every_n, every_s = parse_every(checkpoint_every)
    facts = fingerprint(source, est, format=fmt, label=label, positive=positive, holdout_every=holdout_every,
                        strategy=strategy)
    ckpt = Checkpointer(os.path.join(model_dir, "checkpoints"), None, comm, facts, option="--model-dir")
    loaded = ckpt.load()
    if rank == 0:
        free_shard, free_local = slicer.route(np.array([d, d + 1], dtype=np.int64))
        made = [ctx.transport.call(h, host.create, s, slicer.size(s), opts["rule"], opts["lr"], opts["l1"], opts["l2"],
                                   "float64", free_local[free_shard == s].tolist(), "constant", opts["power_t"])
                for s, h in enumerate(ctx.hosts)]
        made.append(ctx.transport.call(ctx.hosts[0], host.create_rounds, n, every_n, every_s))
        for f in made:
            ctx.transport.wait(f)
        if loaded is not None:
            ps_run.restore_shards(ctx, ckpt, len(ctx.hosts))
    comm.barrier()
    mine = {"position": None, "skipped": {}, "progress": None, "holdout": None, "kernel_loss": 0.0}
    step = 0
    if loaded is not None:
        step, arrays, _ = loaded
        mine = json.loads(bytes(arrays["meta"]).decode())
        mine["progress"]["hist"], mine["holdout"]["hist"] = arrays["hist"], arrays["hist_holdout"]
    pos, skipped = mine["position"], Counter(mine["skipped"])
    kernel_loss = [float(mine["kernel_loss"])]  # the kernel's own progressive loss sum (the estimator's)
    src = _own_source(source, rank, n, follow, block_bytes, fmt)
    header = None
    if fmt == "csv":  # every learner reads the header from the file's first line
        if not isinstance(src, sources.LineShare):
            raise ConfigError(f"{source}: CSV comes with its header once; several learners need a CSV file")
        with open(source, "rb") as f:
            header = f.readline()
    parser = formats.Parser(fmt, bits=est.hash_bits, on_bad_row=on_bad_row, label=label, positive=positive,
                            header=header, interactions=est.interactions)
    out = sys.stderr if show_progress and rank == 0 else None
    if out is not None and loaded is None:
        print(f"learner 0 of {n} ({strategy}), its own examples:", file=out)
    metrics, held = Progress(est.loss, out, mine["progress"]), Progress(est.loss, None, mine["holdout"])
    resumed = metrics.examples
    client = Client(ctx.transport, slicer, ctx.hosts, rank)
    learner_ = Learner(d, est.loss, est.fit_intercept, opts["rule"], opts["lr"], opts["power_t"], opts["l1"], opts["l2"],
                       fuse=True, workers=n, param="rule")
    base = np.sum(comm.allgather(np.array([kernel_loss[0], metrics.weight, metrics.examples])), axis=0)
    serving = None
    if serve and rank == 0:
        serving = _Published(ctx, client, est, base, reading(parser), serve, step,
                             own=lambda: (kernel_loss[0], metrics.weight))

    def learn_block(X, labels, h, z):
        y = est.stream_targets(np.asarray(labels, dtype=np.float64))
        for lo in range(0, X.shape[0], batch_size):
            part = slice(lo, lo + batch_size)
            try:
                kernel_loss[0] += learner_(client, X, part, y[part], h[part], {}, predictions=z[part])[0]
            except DivergedError as e:  # the batch's row, as the block's
                raise DivergedError(str(e), row=lo + e.row, reason=e.reason) from None
        learner_.flush(client)  # the block's last change is applied before its clock ends
        return y

    def save():
        nonlocal step
        step += 1  # the same number on every learner: each saves at every round
        meta = {"position": pos, "skipped": dict(skipped), "progress": metrics.state(), "holdout": held.state(),
                "kernel_loss": kernel_loss[0], "reading": reading(parser)}
        arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), "hist": metrics.hist,
                  "hist_holdout": held.hist}
        ps_run.ShardCheckpoint(ckpt, comm, ctx).save(step, arrays)  # committed on return: now acknowledge
        if pos is not None:
            src.committed(pos)

    clock, slowest, finished = 0, -(1 << 62), False
    halt, quit_reading = threading.Event(), threading.Event()
    t0 = busy = time.monotonic()  # busy: when this learner learned its last example
    with contextlib.ExitStack() as closing, stop_on_signals() as stop, ThreadPoolExecutor(1) as pool, setting(halt):
        if serving is not None:
            closing.callback(serving.close)
        blocks = src.blocks(pos, stop=lambda: stop.is_set() or halt.is_set() or quit_reading.is_set(),
                            idle=stop_when_idle)
        ahead = parsed_ahead(blocks, parser, pool, wait_s=WAIT_S)
        while True:
            item = None
            if not (finished or quit_reading.is_set()):
                item = next(ahead, False)
                finished = item is False
                item = item or None
            examples = 0
            if item is not None and not stop.is_set():  # a block read after the signal is not learned
                end, dropped, block = item
                if strategy == "ssp" and slowest < clock - staleness:
                    slowest = client.wait_min(clock - staleness)
                learn_progressively(block, learn_block, metrics, held, holdout_every, f"{source} (learner {rank})")
                examples, pos = block.X.shape[0], end
                busy = time.monotonic() if examples else busy
                skipped.update(block.skipped)
                skipped.update(dropped)
            labelled = serving.feedback.take(est.hash_bits) if serving is not None and not stop.is_set() else None
            if labelled is not None:  # delayed labels (POST /feedback to learner 0's server)
                learn_progressively(labelled, learn_block, metrics, held, None, f"{source} (learner {rank})")
                examples += labelled.X.shape[0]
            new, checkpoint_at, stop_at = ctx.transport.wait(ctx.transport.call(
                ctx.hosts[0], host.advance, rank, examples, item is None and labelled is None, finished,
                stop.is_set()))
            if new == clock and (finished or quit_reading.is_set()):
                time.sleep(0.01)  # nothing to read, and the others are not there yet
            arrived, clock = new != clock, new  # an idle tick may leave the clock where it was: a round
            if stop_at >= 0:                    # is taken part in once, when the clock reaches it
                quit_reading.set()
            at_round = arrived and clock in (checkpoint_at, stop_at)
            if at_round:
                save()
            if serving is not None:
                serving.publish_if_due(force=at_round)
            if arrived and clock == stop_at:
                break
        stopped = stop.is_set()
    seconds = busy - t0
    if rank == 0:  # the model, from the shards' parts of the last checkpoint (``online/snapshot.py``)
        snapshot.load(model_dir).model.save(model_dir)
    comm.barrier()
    ctx.transport.close()
    return {"progress": metrics.state(), "hist": metrics.hist, "holdout": held.state(), "hist_holdout": held.hist,
            "resumed": resumed, "seconds": seconds, "skipped": dict(skipped), "position": pos, "stopped": stopped,
            "serving": serving.summary() if serving is not None else None}


class _Published:
    """Learner 0's server over the group's model: every ``staleness_s`` seconds (and at every
    checkpoint round) it pulls the whole kernel state from every shard and publishes it, so the
    server answers from the parameter server's model, at most that stale, never from one
    learner's copy. Examples: the group's; progressive loss: learner 0's own."""

    def __init__(self, ctx, client, est, base, how: dict, serve: dict, step: int, own):
        from shardlearn.online.serve import LearnServing

        options = dict(serve)
        self.staleness_s = float(options.pop("staleness_s", 1.0))
        self.ctx, self.client, self.est, self.base, self.reading, self.own = ctx, client, est, base, how, own
        self.version, self.last = int(step), 0.0
        self.serving = LearnServing(**options)
        self.feedback = self.serving.feedback
        self.serving.start(self._pull(), staleness_bound_s=self.staleness_s)

    def _pull(self):
        from shardlearn.online.snapshot import of_state

        d = 1 << self.est.hash_bits
        rows = self.client.wait(self.client.pull(np.arange(d + 2)))
        learned = self.ctx.transport.wait(self.ctx.transport.call(self.ctx.hosts[0], host.learned))
        self.last = time.monotonic()
        return of_state(type(self.est).__name__, self.est.get_params(), rows, progress=self.own(),
                        n_seen=int(self.base[2]) + int(learned), version=self.version, reading=self.reading,
                        origin="parameter server")

    def publish_if_due(self, force: bool = False) -> None:
        if force or time.monotonic() - self.last >= self.staleness_s:
            self.version += 1
            self.serving.publish(self._pull())

    def close(self) -> None:
        self.serving.close()

    def summary(self) -> dict:
        return self.serving.summary()
