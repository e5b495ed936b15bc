"""``shardlearn train DATA --task-column COL``: a joint multi-task model (``shared w0 + v_t``
per task, ``multitask.joint``) from a CSV or Parquet file whose column COL names each row's
task. The driver reads the file (the task column is neither a feature nor the label), and
the fit runs on ``--workers`` local processes with the tasks partitioned by a hash of their
id. ``evaluate`` and ``predict`` read the task column the same way (``task_column``).
"""
from __future__ import annotations

import json

from shardlearn.core.errors import ConfigError

NOT_FOR_TASKS = {"strategy": "--strategy", "optimizer": "--optimizer", "learning_rate": "--learning-rate",
                 "schedule": "--schedule",
                 "checkpoint_dir": "--checkpoint-dir", "checkpoint_every": "--checkpoint-every",
                 "resume": "--resume", "stream": "--stream", "sync_every": "--sync-every"}


def check(args) -> None:
    """The options a joint model takes, checked before the file is read."""
    if args.model not in ("linear", "logistic"):
        raise ConfigError(f"--task-column fits a joint linear or logistic model; --model {args.model} is not one")
    if args.solver not in (None, "lbfgs", "gd"):
        raise ConfigError(f"--task-column fits by lbfgs (OWL-QN with L1) or gd; --solver {args.solver} is not one")
    for name, flag in NOT_FOR_TASKS.items():
        if getattr(args, name, None):
            raise ConfigError(f"{flag} does not apply with --task-column (a full-batch joint fit)")


def read(args, source: dict):
    """``(X, y, tasks, src)``: every kept row of the file, and its task id as text."""
    from shardlearn.data import open as open_source

    src = open_source(**source, key=args.task_column)
    if not hasattr(src, "encoder"):
        raise ConfigError(f"{args.data}: --task-column needs a CSV or Parquet file (columns by name)")
    passed: dict = {}
    X, y = src.read(passthrough=[src.key], into=passed)
    return X, y, passed[src.key].astype(str), src


def train(args, source: dict, save, rule=None) -> None:
    """Fit, save and print the summary; ``rule``: why this many workers, when the CLI chose."""
    from shardlearn.data.labels import map_positive
    from shardlearn.multitask.joint import MultiTaskLinearRegression, MultiTaskLogisticRegression

    check(args)
    X, y, tasks, src = read(args, source)
    cls = MultiTaskLinearRegression if args.model == "linear" else MultiTaskLogisticRegression
    if args.model == "logistic" and args.positive_label is not None:
        y = map_positive(y, args.positive_label)
    est = cls(alpha=args.alpha, task_alpha=args.task_alpha, l1_ratio=args.l1_ratio,
              fit_intercept=not args.no_intercept, solver=args.solver or "lbfgs", max_iter=args.max_iter or 1000,
              tol=args.tol, workers=args.workers).fit(X, y, tasks=tasks)
    save(args, est, {"label": src.label, "zero_based": None, "encoder": src.encoder.to_json(),
                     "delimiter": source["delimiter"], "task_column": src.key})
    reports = est.fit_result_.reports
    print(json.dumps({"model_dir": args.out, "workers": len(reports), **({"workers_rule": rule} if rule else {}),
                      "rows": int(X.shape[0]), "rows_per_worker": [r["rows"] for r in reports],
                      "tasks": int(est.tasks_.size), "tasks_per_worker": [r["tasks"] for r in reports],
                      "features": int(X.shape[1]), "skipped": dict(src.skipped), "n_iter": est.n_iter_,
                      "train_objective": est.objective_}))
