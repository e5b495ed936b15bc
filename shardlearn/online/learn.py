"""Learning from a stream: read blocks of lines, parse, score each example before learning
from it (progressive validation), learn, and checkpoint the model together with the
position of the last applied line, so a run killed at any moment and started again goes on
from that line: every example is applied exactly once, and the weights end as those of an
uninterrupted run.

A checkpoint (``runtime/checkpoint.py``: one folder per checkpoint, checksums, committed by
an atomic rename) holds the kernel's state, the progressive metrics and the byte offset
just past the last applied block; it is written at a block boundary, never mid-block. The
next block is read and parsed in a second thread while the kernel learns this one.
SIGINT and SIGTERM only set a flag that the loop reads between blocks: the block being
learned is finished, the final checkpoint written, and the run ends normally.

>>> import os, tempfile
>>> from shardlearn import OnlineLogisticRegression
>>> d = tempfile.mkdtemp(); p = os.path.join(d, "s.vw")
>>> _ = open(p, "w").write("".join(f"{1 if i % 3 else -1} |f x:{i % 3}\\n" for i in range(300)))
>>> out = learn(p, OnlineLogisticRegression(hash_bits=12), fmt="vw", model_dir=os.path.join(d, "m"))
>>> out["examples"], out["resumed_from_example"], out["progressive_logloss"] < 0.3
(300, 0, True)
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np

from shardlearn.core.errors import ConfigError, DivergedError
from shardlearn.online import formats, snapshot, sources
from shardlearn.online.progress import Progress
from shardlearn.runtime.checkpoint import Checkpointer, parse_every

FEEDBACK_WAIT_S = 0.05  # serving: how long the loop waits for a block before it learns delayed labels


@contextlib.contextmanager
def stop_on_signals():
    """SIGINT/SIGTERM set a flag (main thread only): the loop ends between two blocks."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {s: signal.signal(s, lambda *_: flag.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def setting(event: threading.Event):
    """Sets ``event`` on the way out (before the thread pool above it waits for its thread)."""
    try:
        yield event
    finally:
        event.set()


def parsed_ahead(blocks, parser, pool, wait_s: float | None = None):
    """``(position, dropped, parsed block)`` in order, the next block read and parsed in ``pool``'s
    thread while the caller learns this one (the parser and the kernel release the GIL).
    ``wait_s``: when no block is ready within that many seconds, None comes instead (a learner
    of a group ticks while it waits), and the same block is waited for again next time."""
    def work():
        item = next(blocks, None)
        if item is None:
            return None
        buf, end, where, dropped = item
        return end, dropped, parser.block(buf, where)

    pending = pool.submit(work)
    while True:
        try:
            item = pending.result(timeout=wait_s)
        except FutureTimeout:
            yield None
            continue
        if item is None:
            return
        pending = pool.submit(work)
        yield item


def learn_progressively(block, learn_block, progress: Progress, held: Progress, holdout_every: int | None,
                        source: str) -> None:
    """Score every example of a parsed ``block`` before learning from it (``learn_block(X, labels,
    weights, predictions) -> targets``), every ``holdout_every``-th only scored, and add them to the
    progressive metrics (``held``: the held-out ones; the count runs over learned and held out alike).
    Weights that overflow stop the stream at the example where the loss shows it (``source``
    names the stream in that one line): a model predicting NaN is neither served nor saved."""
    n, nnz = block.X.shape[0], np.diff(block.X.indptr)
    seen = progress.examples + held.examples
    out = np.zeros(n, dtype=bool)
    if holdout_every:
        out = (np.arange(seen, seen + n) + 1) % holdout_every == 0
    z = np.empty(n)
    try:
        y = learn_block(block.X, block.y, np.where(out, 0.0, block.h), z)
    except DivergedError as e:
        if e.row is None:
            raise
        raise DivergedError(f"{source}: example {seen + e.row + 1}: {e.reason}") from None
    progress.add(z[~out], y[~out], block.h[~out], nnz[~out])
    held.add(z[out], y[out], block.h[out], nnz[out])


def reading(parser) -> dict:
    """How the stream's examples are read (a prediction's instances are read so: ``online/instances.py``)."""
    out = {"format": parser.fmt, "label": parser.label, "positive": parser.positive}
    if parser.csv is not None:
        out.update(columns=list(parser.csv.names), kinds=parser.csv.kinds)
    return out


def fingerprint(source: str, estimator, **options) -> dict:
    """What a run resumed from a checkpoint must share with the run that wrote it."""
    named = source if "://" in source or source == "-" else os.path.abspath(source)
    return {"source": named, **options, "estimator": type(estimator).__name__, **estimator.get_params()}


def learn(source: str, estimator, *, fmt: str, model_dir: str, checkpoint_every=None, on_bad_row: str = "error",
          follow: bool = False, stop_when_idle: float | None = None, progress_out=None,
          block_bytes: int = sources.BLOCK_BYTES, label: str | None = None, positive: str | None = None,
          holdout_every: int | None = None, serving=None) -> dict:
    """Learn ``estimator`` from ``source`` (a path, ``-``, a ``redis://`` stream: ``online/sources.py``),
    saving it to ``model_dir`` at the end and checkpointing into ``model_dir/checkpoints`` (every N
    examples or T seconds, and at the end). A checkpoint of the same run there is resumed from.
    ``label``/``positive``: the label field of JSON lines and CSV, and the class value that is
    positive (``online/formats.py``). ``holdout_every`` K: every K-th example is scored, never
    learned from, and its loss reported apart (``holdout_*``). ``serving`` (``online/serve.py``'s
    ``LearnServing``): serve predictions meanwhile, from a snapshot published at every checkpoint,
    and learn the delayed labels it collects. Returns the run's summary."""
    if holdout_every is not None and holdout_every < 2:
        raise ConfigError(f"--holdout-every must be at least 2, got {holdout_every}")
    every_n, every_s = parse_every(checkpoint_every)
    named = "standard input" if source == "-" else source
    src = sources.open_source(source, follow=follow, block_bytes=block_bytes)
    facts = fingerprint(source, estimator, format=fmt, label=label, positive=positive, holdout_every=holdout_every)
    ckpt = Checkpointer(os.path.join(model_dir, "checkpoints"), None, None, facts, option="--model-dir")
    loaded = ckpt.load()
    pos, skipped, progress_state, held_state, resumed, step = None, Counter(), None, None, 0, 0
    if loaded is not None:
        if not src.resumable:
            raise ConfigError(f"{model_dir} holds a checkpoint, and standard input cannot be resumed from a "
                              "position; learn from a file or use a fresh --model-dir")
        step, arrays, meta = loaded
        estimator.restore(arrays, meta["estimator"])
        pos, skipped = meta["position"], Counter(meta["skipped"])
        progress_state = dict(meta["progress"], hist=arrays["hist"])
        held_state = dict(meta["holdout"], hist=arrays["hist_holdout"])
        resumed = int(meta["progress"]["examples"])
    header = None
    if fmt == "csv" and pos is not None:  # resuming mid-file: the header is the file's first line
        if not isinstance(src, sources.FileSource):
            raise ConfigError(f"{model_dir}: a CSV stream's header came once, at its start; resuming "
                              "needs a CSV file (or a fresh --model-dir)")
        with open(source, "rb") as f:
            header = f.readline()
    parser = formats.Parser(fmt, bits=estimator.hash_bits, on_bad_row=on_bad_row, label=label, positive=positive,
                            header=header, interactions=estimator.interactions)
    progress = Progress(estimator.loss, progress_out, progress_state)
    held = Progress(estimator.loss, None, held_state)  # the held-out examples (none without holdout_every)
    t0 = last_save = busy = time.monotonic()  # busy: when the last example was learned
    saved_at = progress.examples

    def published(state=None):
        return snapshot.of_model(estimator, version=step, reading=reading(parser), state=state)

    def save():
        nonlocal step
        step += 1  # checkpoint numbers only grow, across restarts too
        arrays, est_meta = estimator.snapshot()
        arrays["hist"], arrays["hist_holdout"] = progress.hist, held.hist
        meta = {"position": pos, "skipped": dict(skipped), "progress": progress.state(), "holdout": held.state(),
                "estimator": est_meta, "reading": reading(parser)}
        ckpt.save(step, arrays, meta)
        if pos is not None:
            src.committed(pos)
        if serving is not None:  # the state the checkpoint holds, built from its touched rows
            serving.publish(published((arrays, est_meta)))

    halt = threading.Event()  # ends the reading thread however the loop ends (an error too)
    with contextlib.ExitStack() as closing:
        if serving is not None:
            serving.start(published())
            closing.callback(serving.close)  # after the last checkpoint is published
        with stop_on_signals() as stop, ThreadPoolExecutor(1) as pool, setting(halt):
            blocks = src.blocks(pos, stop=lambda: stop.is_set() or halt.is_set(), idle=stop_when_idle)
            for item in parsed_ahead(blocks, parser, pool, wait_s=None if serving is None else FEEDBACK_WAIT_S):
                if stop.is_set():  # a block read after the signal is not learned: the position stays before it
                    break
                labelled = serving.feedback.take(estimator.hash_bits) if serving is not None else None
                if labelled is not None:  # delayed labels (POST /feedback), between two blocks of the stream
                    learn_progressively(labelled, estimator.learn_block, progress, held, None, named)
                if item is not None:
                    end, dropped, block = item
                    learn_progressively(block, estimator.learn_block, progress, held, holdout_every, named)
                    skipped.update(block.skipped)
                    skipped.update(dropped)
                    pos = end
                now = time.monotonic()
                busy = now if (item is not None and item[2].X.shape[0]) or labelled is not None else busy
                fresh = progress.examples > saved_at  # (serving wakes the loop while the stream idles)
                if (every_n and progress.examples - saved_at >= every_n) or \
                        (every_s and fresh and now - last_save >= every_s):
                    save()
                    saved_at, last_save = progress.examples, now
            stopped = stop.is_set()
        save()
    estimator.save(model_dir)
    summary = dict(progress.summary(busy - t0, since=resumed), skipped=dict(skipped),
                   model_dir=model_dir, resumed_from_example=resumed, stopped_by_signal=stopped, position=pos)
    if serving is not None:
        summary["serving"] = serving.summary()
    if holdout_every:
        summary.update({f"holdout_{k}": v for k, v in held.summary(1.0).items() if k not in ("examples_per_s",
                                                                                               "weight")})
    return summary
