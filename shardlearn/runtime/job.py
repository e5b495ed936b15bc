"""What one worker does in a distributed fit, whoever started it (the local group
or torchrun): open the data, take its shard, agree on the preconditioner and
classes with the others, train, and report what it read.
"""
from __future__ import annotations

import time

import numpy as np

from shardlearn import models
from shardlearn.data import partition as partitioners
from shardlearn.runtime import label_scale, ps_run
from shardlearn.runtime.memory import peak_rss_mb, reset_peak_rss
from shardlearn.runtime.spill import open_spec
from shardlearn.data.labels import check_classes
from shardlearn.runtime.agree import sum_counts, union
from shardlearn.runtime.config import TrainConfig
from shardlearn.runtime.loop import train_local


def _rows(cfg: TrainConfig, comm, n, labels=None):
    return partitioners.rows_for(cfg.partition, comm.size, comm.rank, n=n, seed=cfg.random_state or 0, labels=labels)


def fit_arrays(comm, *, model: str, cfg: dict, spill: dict, n_outputs: int, progress=None, snapshot_every=None):
    """Train on this worker's rows of spilled (memory-mapped) arrays."""
    cfg = TrainConfig(**cfg)
    comm, ctx = _roles(comm, cfg)
    if ctx is not None and ctx.is_server:
        return ps_run.serve(ctx)
    X, y, sw = open_spec(spill)
    if cfg.partition == "contiguous":
        # a slice: dense rows stay a view of the shared-memory map. Copying the shard into private
        # memory made single passes faster but the whole fit slower and the worker larger
        # (benchmarks/results/distributed-D1-D2-shard-copy.md)
        lo, hi = partitioners.bounds(X.shape[0], comm.size, comm.rank)
        rows = slice(lo, hi)
    else:
        rows = _rows(cfg, comm, X.shape[0], labels=np.asarray(y) if cfg.partition == "stratified" else None)
    Xs, ys = X[rows], np.array(y[rows])
    sws = None if sw is None else np.array(sw[rows])
    # sparse rows taken from the read-only map are this worker's copy: narrowed in place (runtime.active)
    return _train(comm, model, cfg, Xs, ys, sws, n_outputs, progress, ctx=ctx, snapshot_every=snapshot_every,
                  owned=True, rows=int(Xs.shape[0]))


def fit_rows(comm, *, model: str, cfg: dict, X, y, sample_weight=None, n_outputs: int = 1, classes=None,
             progress=None):
    """Train on rows this worker already holds (an engine such as Dask, Ray or Spark handed it its
    partitions): the same roles, loop and report as ``fit_arrays``. ``y``: the labels as read,
    coded here by their place in ``classes`` (classifiers; None: regression)."""
    cfg = TrainConfig(**cfg)
    comm, ctx = _roles(comm, cfg)
    if ctx is not None and ctx.is_server:
        return ps_run.serve(ctx)
    y = np.asarray(y)
    codes = y.astype(np.float64) if classes is None else np.searchsorted(np.asarray(classes), y)
    cfg, labels = _regression_labels(model, cfg, None if classes is not None else codes, sample_weight, comm)
    return _train(comm, model, cfg, X, codes, sample_weight, n_outputs, progress, ctx=ctx, rows=int(X.shape[0]),
                  **labels)


def _regression_labels(model: str, cfg, y, sw, comm) -> tuple:
    """A regression's labels stay on the workers (a file's, an engine's): their mean square, agreed
    in one allreduce, sets the steps' scale (``runtime/label_scale.py``) and goes into the report,
    where the driver's ``check_fit`` reads it. ``(cfg, report facts)``; ``y`` None: a classifier's."""
    if y is None:
        return cfg, {}
    ms = label_scale.mean_square(y, sw, comm)
    return (label_scale.scaled(cfg, ms) if label_scale.applies(models.get(model), cfg) else cfg), \
        {"label_mean_square": ms}


def _roles(comm, cfg):
    """``(the trainers' comm, parameter-server context or None)``; joins the RPC group if needed."""
    if not cfg.uses_ps:
        return comm, None
    return ps_run.enter(comm, cfg)


def _train(comm, model, cfg, X, y, sw, n_outputs, progress=None, ctx=None, snapshot_every=None, owned=False,
           **facts):
    """This worker's fit over its rows; ``facts`` go into its report. ``owned``: ``X`` is this worker's
    own copy, whose column indices may be renumbered in place (``runtime.active.compact``)."""
    reset_peak_rss()
    m = models.get(model)
    if cfg.label_scale is None:  # (a file's or an engine's regression agreed it already: _regression_labels)
        cfg = label_scale.agreed(m, cfg, y, sw, comm)
    if ctx is not None or cfg.plan == "hogwild":
        show = progress if comm.rank == 0 else None
        resumed = {}
        if ctx is not None:
            out = ps_run.train(comm, ctx, m, X, y, sw, cfg, progress=show, snapshot_every=snapshot_every,
                               report=resumed, owned=owned, n_outputs=n_outputs)
        else:
            out = ps_run.train_hogwild(comm, m, X, y, sw, cfg, progress=show, report=resumed, owned=owned,
                                       n_outputs=n_outputs)
        out["report"].update(resumed)
        out["report"].update(facts, peak_rss_mb=peak_rss_mb())
        return out
    comm.barrier()
    started_at = time.time()
    before = comm.stats.snapshot()
    t = time.perf_counter()
    resumed = {}
    result = train_local(m, X, y, sw, cfg, n_outputs, comm=comm, show=False,
                         progress=progress if comm.rank == 0 else None, report=resumed, owned=owned)
    params, n_iter, steps = result.params, result.n_iter, result.steps
    after = comm.stats.snapshot()
    report = {k: after[k] - before[k] for k in after}
    report.update(resumed)
    report.update(facts, started_at=started_at, fit_seconds=time.perf_counter() - t, rank=comm.rank, peak_rss_mb=peak_rss_mb())
    return {"params": params if comm.rank == 0 else None, "n_iter": int(n_iter), "report": report, "steps": steps}


def fit_source(comm, *, model: str, cfg: dict, source: dict, positive_label=None, progress=None):
    """Train on this worker's shard of a file (CLI, torchrun): only the shard is read."""
    from shardlearn.data import open as open_source

    cfg = TrainConfig(**cfg)
    comm, ctx = _roles(comm, cfg)
    if ctx is not None and ctx.is_server:
        return ps_run.serve(ctx)
    if cfg.stream:  # out of core: labels and sizes from one pass; the rows are read again at every pass
        src, blocks, y = _stream_shard(comm, source, cfg)
    elif cfg.partition == "contiguous" and _is_libsvm(source):
        src, X, y = _libsvm_shard(comm, source)
    else:
        src = open_source(**source)
        X, y = src.shard(comm.size, comm.rank, cfg.partition, cfg.random_state or 0).read()
    y = np.asarray(y)
    if positive_label is not None:
        from shardlearn.data.labels import map_positive

        y = map_positive(y, positive_label)
    task = models.get(model).task
    classes = None
    if task == "classification":
        classes = union(comm, np.unique(y))
        check_classes(str(source["data"]), classes, model)
        if model in ("logistic", "softmax"):  # as LogisticRegression does: binary -> logistic
            model = "logistic" if len(classes) == 2 else "softmax"
        codes = np.searchsorted(np.asarray(classes), y)
        n_outputs = models.get(model).n_outputs(len(classes))
    else:
        codes, n_outputs = y.astype(np.float64), 1
    cfg, labels = _regression_labels(model, cfg, None if task == "classification" else codes, None, comm)
    if cfg.stream:  # the labels of the survey pass set the scale above
        X, codes = _coded_stream(blocks, src, classes, positive_label), None
    out = _train(comm, model, cfg, X, codes, None, n_outputs, progress, ctx=ctx, **labels,
                 rows=int(X.shape[0]),
                 bytes_read=int(getattr(src, "bytes_read", 0)), source_rows=int(src.n_rows))
    if cfg.stream:
        out["report"]["passes"] = X.passes  # reads of the shard (preconditioner, each evaluation or epoch)
    out["classes"] = classes
    out["n_features"] = int(src.n_features)
    out["encoder"] = src.encoder.to_json() if hasattr(src, "encoder") else None
    out["zero_based"] = getattr(src, "zero_based", None)
    out["label"] = src.label if hasattr(src, "encoder") else source.get("label")
    out["skipped"] = sum_counts(comm, src.skipped)  # every worker's dropped rows, not rank 0's alone
    return out


def _stream_shard(comm, source, cfg):
    """``(facts, raw blocks, labels seen)`` of this worker's shard, surveyed in one pass
    without keeping it: a LIBSVM byte range (base and width agreed by allreduce, as
    ``_libsvm_shard`` does), or any source's shard."""
    from shardlearn.data import libsvm, stream
    from shardlearn.data import open as open_source

    if cfg.partition == "contiguous" and _is_libsvm(source):
        import os

        path, bad = source["data"], source.get("on_bad_row", "error")
        if not os.path.exists(path):
            from shardlearn.core.errors import DataError

            raise DataError(f"{path}: no such file")
        start, end = libsvm.split(path, comm.size)[comm.rank]
        skipped: dict = {}
        seen = stream.survey(stream.libsvm_blocks(path, start, end, on_bad_row=bad, skipped=skipped))
        n_rows, zero_based, n_features = _agree_libsvm(comm, source, seen["min_index"], seen["max_index"],
                                                       seen["rows"])
        facts = _ShardFacts(n_rows, n_features, zero_based, end - start, skipped)
        facts.shard_rows, facts.moments = seen["rows"], None
        blocks = stream.libsvm_blocks(path, start, end, zero_based=zero_based, n_features=n_features, on_bad_row=bad)
        return facts, blocks, seen["labels"]
    src = open_source(**source)
    shard = src.shard(comm.size, comm.rank, cfg.partition, cfg.random_state or 0)
    seen = stream.survey(shard.blocks)
    src.shard_rows, src.moments = seen["rows"], seen["moments"]
    src.skipped = dict(src.skipped)  # the survey's count: later passes read the same rows again
    return src, shard.blocks, seen["labels"]


def _coded_stream(blocks, src, classes, positive_label):
    """The shard as a ``Stream`` whose labels are the model's codes."""
    from shardlearn.data.labels import map_positive
    from shardlearn.data.stream import Stream

    def code(y):
        y = np.asarray(y) if positive_label is None else map_positive(np.asarray(y), positive_label)
        return np.searchsorted(np.asarray(classes), y) if classes is not None else y.astype(np.float64)

    return Stream(lambda: ((X, code(y)) for X, y in blocks()), src.shard_rows, src.n_features,
                  bytes_per_pass=getattr(src, "bytes_read", 0), moments=src.moments)


def _is_libsvm(source) -> bool:
    from shardlearn.data import detect_format

    fmt = source.get("format", "auto")
    return (detect_format(source["data"]) if fmt == "auto" else fmt) == "libsvm"


class _ShardFacts:
    """What a worker that read only its byte range knows of the whole file."""

    def __init__(self, n_rows, n_features, zero_based, bytes_read, skipped):
        self.n_rows, self.n_features, self.zero_based = n_rows, n_features, zero_based
        self.bytes_read, self.skipped = bytes_read, skipped


def _libsvm_shard(comm, source):
    """This worker's byte range of a LIBSVM file; base, width and row count agreed by allreduce."""
    import os

    from shardlearn.data import libsvm
    from shardlearn.data.labels import numeric_labels

    path = source["data"]
    if not os.path.exists(path):
        from shardlearn.core.errors import DataError

        raise DataError(f"{path}: no such file")
    start, end = libsvm.split(path, comm.size)[comm.rank]
    data, indices, indptr, y, skipped, nbytes = libsvm.parse_raw(path, start, end, source.get("on_bad_row", "error"))
    n_rows, zero_based, n_features = _agree_libsvm(comm, source, int(indices.min()) if indices.size else None,
                                                   int(indices.max()) if indices.size else -1, y.size)
    X = libsvm.finish(path, data, indices, indptr, zero_based, n_features, (start, end))
    return _ShardFacts(n_rows, n_features, zero_based, nbytes, skipped), X, numeric_labels(y)


def _agree_libsvm(comm, source, lo, hi, rows):
    """``(rows, zero_based, n_features)`` of the whole file, from every worker's smallest and
    largest raw index (``lo`` None: no values) and row count, by allreduce."""
    lo = comm.allreduce(np.array([np.inf if lo is None else float(lo)]), op="min")[0]
    hi = comm.allreduce(np.array([float(hi)]), op="max")[0]
    n_rows = int(comm.allreduce(np.array([float(rows)]))[0])
    zero_based = source.get("zero_based", "auto")
    zero_based = bool(lo == 0) if zero_based == "auto" else bool(zero_based)
    return n_rows, zero_based, max(source.get("n_features") or int(hi + 1 if zero_based else hi), 0)


JOBS = {"fit_arrays": fit_arrays, "fit_source": fit_source, "fit_rows": fit_rows}
