"""``shardlearn train DATA --group-by COL``: one independent model per value of column COL
(``multitask.groups``), the groups spread over ``--workers`` local processes by a hash of
their value, each worker streaming the file and keeping only its groups' rows. The result
is one model directory; ``evaluate`` and ``predict`` route each row by the same column.
``--fallback pooled`` also fits one model on every row, which answers groups never seen in
training (else they are an error).
"""
from __future__ import annotations

import json

from shardlearn.cli.tasks import NOT_FOR_TASKS
from shardlearn.core.errors import ConfigError


def check(args) -> None:
    if args.model == "softmax":
        raise ConfigError("--group-by fits binary or regression models per group; --model softmax is not one")
    for name, flag in dict(NOT_FOR_TASKS, stream="--stream", metrics="--metrics").items():
        if getattr(args, name, None):
            raise ConfigError(f"{flag} does not apply with --group-by (one small fit per group)")


def train(args, source: dict, save, estimator, rule=None) -> None:
    """Fit, save and print the summary; ``rule``: why this many workers, when the CLI chose."""
    from shardlearn.multitask.groups import fit_file
    from shardlearn.runtime import distributed

    check(args)
    model, info, reports = fit_file(estimator, source, args.group_by, workers=args.workers,
                                    positive_label=args.positive_label)
    if args.fallback == "pooled":
        cfg = estimator.train_config()
        result = distributed.train_file(args.model, cfg, dict(source, key=args.group_by), args.positive_label)
        model.fallback_ = estimator.adopt(result)
    save(args, model, {"label": info["label"], "zero_based": None, "encoder": info["encoder"],
                       "delimiter": source["delimiter"], "group_column": args.group_by})
    print(json.dumps({"model_dir": args.out, "workers": len(reports), **({"workers_rule": rule} if rule else {}),
                      "rows": sum(r["rows"] for r in reports), "rows_per_worker": [r["rows"] for r in reports],
                      "groups": int(model.groups_.size), "groups_per_worker": [r["groups"] for r in reports],
                      "single_class_groups": int((model.single_ >= 0).sum()), "features": model.n_features_in_,
                      "skipped": info["skipped"], "fallback": args.fallback}))

