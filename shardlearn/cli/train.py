"""``shardlearn train``: one path for any number of workers.

The options and what can be checked of the file from its header are checked
here, before any worker starts; then ``runtime.distributed.train_file`` runs the
same job in this process (one worker) or on the local group (more), so a bad
row, a single class or a bad setting is the same one-line error either way.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os

from shardlearn.core.errors import ConfigError, ShardlearnError


def source_options(args) -> dict:
    """The data options of ``train`` as ``shardlearn.data.open`` takes them."""
    zero_based = {"auto": "auto", "yes": True, "no": False}[args.zero_based]
    return dict(data=args.data, label=args.label, format=args.format, categorical=_split(args.categorical),
                features=_split(args.features), encoding=args.encoding, hash_bits=args.hash_bits,
                header=not args.no_header, zero_based=zero_based, on_bad_row=args.on_bad_row,
                delimiter=unescape(args.delimiter))


def _split(value):
    return [c.strip() for c in value.split(",")] if value else None


def unescape(delimiter):
    """``--delimiter '\\t'`` as typed in a shell means a tab."""
    return {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(delimiter, delimiter) if delimiter is not None else None


def run(args) -> None:
    from shardlearn.data import libsvm
    from shardlearn.data.source import precheck
    from shardlearn.runtime import distributed, launch

    world = launch.from_env()
    if args.data is None or args.out is None:
        raise ConfigError(f"train needs {'DATA' if args.data is None else '--out'} (on the command line or in "
                          "--config JOB.toml)")
    if args.launcher == "torchrun" and world is None:
        raise ConfigError("launcher torchrun: start this job with torchrun on every machine, e.g. torchrun "
                          "--nnodes N --nproc-per-node K ... -m shardlearn train --config JOB.toml")
    _check_out(args.out)
    source = source_options(args)
    fmt = precheck(**source)  # a bad option, path or column: one line now, not after the workers start
    rule = None
    if args.workers is None:
        args.workers, rule = (1, None) if world is not None else launch.auto_workers(_data_bytes(args.data))
    if args.task_column is not None and args.group_by is not None:
        raise ConfigError("--group-by and --task-column are two different models: choose one")
    if args.task_column is not None:
        from shardlearn.cli import tasks

        return tasks.train(args, source, save, rule)
    if args.group_by is not None:
        from shardlearn.cli import groups

        return groups.train(args, source, save, _estimator(args), rule)
    est = _estimator(args)
    if args.launcher in ("ray", "dask"):
        from shardlearn.cli import engines

        return engines.train(args, source, save, est)
    cfg = dataclasses.replace(est.train_config(), resume=args.resume, stream=args.stream)
    with libsvm.plain(args.data) if fmt == "libsvm" else contextlib.nullcontext(args.data) as readable:  # gzip LIBSVM: decompressed once, then split by byte range
        try:
            result = distributed.train_file(args.model, cfg, dict(source, data=readable), args.positive_label)
        except ShardlearnError as e:
            raise type(e)(str(e).replace(readable, args.data)) from None
    if result.params is None:  # a torchrun rank other than 0: rank 0 writes the model
        return
    est.adopt(result)
    info = result.info
    save(args, est, {"label": info["label"], "zero_based": info["zero_based"], "encoder": info["encoder"],
                     "delimiter": source["delimiter"]})
    rows = [r.get("rows", 0) for r in result.reports if r.get("role") != "server"]
    resumed = result.reports[0].get("resumed_from")
    print(json.dumps({"model_dir": args.out, "workers": len(rows), **({"workers_rule": rule} if rule else {}),
                      "rows": sum(rows), "rows_per_worker": rows, "features": info["n_features"],
                      "skipped": info["skipped"], "n_iter": result.n_iter, "train_objective": result.final_loss,
                      **({"resumed_from": resumed} if resumed is not None else {})}))


def _check_out(out: str) -> None:
    """``--out`` must name a model directory to write: new, empty, or a model to replace."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"{out}: exists and is not a directory; --out names a model directory to write")
    if os.path.isdir(out) and os.listdir(out) and not os.path.exists(os.path.join(out, "model.json")):
        raise ConfigError(f"{out}: a directory holding other files; --out names a new or empty directory, "
                          "or a model to replace")


def _data_bytes(path: str) -> int:
    """The data's size for the workers rule: a gzip file counts uncompressed (its trailer's
    ISIZE, exact below 4 GB; a 2 MB kddcup99 .gz holds 75 MB of CSV)."""
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, n)) for d, _, files in os.walk(path) for n in files)
    if not os.path.exists(path):
        return 0
    size = os.path.getsize(path)
    if path.lower().endswith(".gz") and size >= 18:
        with open(path, "rb") as f:
            f.seek(-4, os.SEEK_END)
            return max(size, int.from_bytes(f.read(4), "little"))
    return size


def _estimator(args):
    from shardlearn.sklearn import LinearRegression, LinearSVC, LogisticRegression

    common = dict(alpha=args.alpha, l1_ratio=args.l1_ratio, fit_intercept=not args.no_intercept, solver=args.solver,
                  optimizer=args.optimizer, learning_rate=args.learning_rate, schedule=args.schedule,
                  batch_size=args.batch_size,
                  max_iter=args.max_iter, tol=args.tol, random_state=args.random_state, workers=args.workers,
                  strategy=args.strategy, sync_every=args.sync_every, partition=args.partition,
                  checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
                  max_restarts=args.max_restarts, staleness=args.staleness, servers=args.servers, slicer=args.slicer,
                  device=args.device, compression=args.compression, error_feedback=args.error_feedback)
    if args.model == "linear":
        return LinearRegression(**common)
    if args.model in ("hinge", "squared_hinge"):
        return LinearSVC(loss=args.model, **common)
    return LogisticRegression(**common)


def save(args, est, facts) -> None:
    """The model, what ``predict`` needs to read data as training did, and the step metrics."""
    from shardlearn.core import modelfile

    if args.metrics:
        with open(args.metrics, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in est.fit_result_.steps)
    est.save(args.out)
    meta, arrays = modelfile.read(args.out)
    meta["training"] = dict(facts, model=args.model, positive_label=args.positive_label, header=not args.no_header)
    modelfile.write(args.out, meta, arrays)
