"""``shardlearn learn SOURCE``: learn from a stream of examples, one at a time, printing
progressive validation as Vowpal Wabbit does (stderr) and one JSON line at the end (stdout).
A file ends at its end; ``--follow`` waits for more (stopped by Ctrl-C, SIGTERM or
``--stop-when-idle``); a restart with the same ``--model-dir`` goes on from its checkpoint.
``--workers N`` runs N learners sharing the model on a parameter server (``online/learn_group.py``);
``--serve HOST:PORT`` serves predictions meanwhile. ``shardlearn serve MODEL_DIR`` serves a model
directory, swapping in each newer checkpoint (``online/serve.py``)."""
from __future__ import annotations

import json
import os
import sys

from shardlearn.core.errors import ConfigError


def run(args) -> None:
    from shardlearn.online.estimators import OnlineLinearRegression, OnlineLogisticRegression
    from shardlearn.online import NEEDS_LABEL
    from shardlearn.online.learn import learn

    opts = dict(hash_bits=args.hash_bits, rule=args.rule, learning_rate=args.learning_rate, l1=args.l1, l2=args.l2,
                fit_intercept=not args.no_intercept, power_t=args.power_t, interactions=args.quadratic or ())
    if args.loss == "squared":
        est = OnlineLinearRegression(**opts)
    else:
        est = OnlineLogisticRegression(loss=args.loss, **opts)
    if args.source == "-" and args.follow:
        raise ConfigError("--follow needs a file, not standard input")
    if args.label is not None and args.format not in NEEDS_LABEL:
        raise ConfigError(f"--label names a field of {', '.join(NEEDS_LABEL)} lines; --format {args.format} "
                          "carries its label first on each line")
    every = args.checkpoint_every
    if args.serve is not None and every is None:
        every = "10s"  # a snapshot is published at every checkpoint
    common = dict(fmt=args.format, model_dir=args.model_dir, checkpoint_every=every,
                  on_bad_row=args.on_bad_row, follow=args.follow, stop_when_idle=args.stop_when_idle,
                  label=args.label, positive=args.positive_label, holdout_every=args.holdout_every)
    if args.workers != 1 or args.strategy != "asp":
        from shardlearn.online.learn_group import learn_group

        summary = learn_group(args.source, est, workers=args.workers, strategy=args.strategy,
                              staleness=args.staleness, batch_size=args.batch_size, show_progress=not args.quiet,
                              serve=_serving(args), **common)
    else:
        from shardlearn.online.serve import LearnServing

        serving = _serving(args)
        summary = learn(args.source, est, progress_out=None if args.quiet else sys.stderr,
                        serving=LearnServing(**serving) if serving else None, **common)
    print(json.dumps(summary))


def _serving(args) -> dict | None:
    if args.serve is None:
        if args.token is not None or args.feedback_from is not None:
            raise ConfigError("--token and --feedback-from go with --serve")
        return None
    _can_serve()
    out = dict(bind=args.serve, token=_token(args), max_body=args.max_body, feedback_ttl_s=args.feedback_ttl,
               labels=args.feedback_from)
    if args.workers != 1 or args.strategy != "asp":
        out["staleness_s"] = args.serve_staleness
    return out


def _token(args) -> str | None:
    token = args.token if args.token is not None else os.environ.get("SHARDLEARN_TOKEN")
    if token is not None and (not token or any(c.isspace() for c in token)):
        raise ConfigError("--token must be a non-empty word without spaces")
    return token


def _can_serve() -> None:
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn", "prometheus_client") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"serving needs {', '.join(missing)}: pip install 'shardlearn[serve]'")


def serve(args) -> None:
    _can_serve()
    from shardlearn.online.serve import serve as run_server

    print(json.dumps(run_server(args.model_dir, bind=args.bind, token=_token(args), max_body=args.max_body)))
