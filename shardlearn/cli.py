"""The ``shardlearn`` command: parse, build objects, call.

Errors exit with code 2 and one line on stderr (a traceback only with ``--debug``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np

from shardlearn.data.labels import map_positive
from shardlearn.runtime.config import PLANS, SOLVER_STRATEGY

MODEL_CHOICES = ("linear", "logistic", "softmax", "hinge", "squared_hinge")
FORMATS = ("auto", "csv", "libsvm", "npz", "npy", "parquet")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other error
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="shardlearn", description="Distributed machine learning: train, evaluate, predict.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a model on a data file and save it")
    t.add_argument("data")
    t.add_argument("--label", help="label column (name or 0-based index) for CSV and Parquet")
    t.add_argument("--model", choices=MODEL_CHOICES, default="logistic")
    t.add_argument("--alpha", type=float, default=1e-4)
    t.add_argument("--l1-ratio", type=float, default=0.0)
    t.add_argument("--no-intercept", action="store_true")
    t.add_argument("--solver", choices=tuple(SOLVER_STRATEGY), default="lbfgs")
    t.add_argument("--optimizer", default="adagrad", help="for --solver sgd: sgd, momentum, nesterov, adagrad, adam, ftrl")
    t.add_argument("--learning-rate", type=float)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--max-iter", type=int, default=300)
    t.add_argument("--tol", type=float, default=1e-6)
    t.add_argument("--random-state", type=int)
    t.add_argument("--workers", type=int, default=None, help="local worker processes (default: the number of cores)")
    t.add_argument("--strategy", choices=tuple(PLANS),
                   help="how workers agree (default: the solver's: lbfgs, gd, or bsp for sgd); ssp and asp run "
                        "over the parameter server, hogwild on one shared vector")
    t.add_argument("--staleness", type=int, default=4, help="ssp: how many clocks a worker may run ahead (default 4)")
    t.add_argument("--servers", type=int, default=0,
                   help="dedicated parameter-server processes (default 0: every worker hosts one shard)")
    t.add_argument("--slicer", choices=("range", "hash"), default="range", help="parameter-server key -> shard")
    t.add_argument("--sync-every", type=int, help="local_sgd: average parameters every H steps (default 8)")
    t.add_argument("--partition", choices=("contiguous", "random", "stratified"), default="contiguous")
    t.add_argument("--positive-label", help="binary models: this label value is the positive class, all others negative")
    t.add_argument("--format", choices=FORMATS, default="auto")
    t.add_argument("--features", help="comma-separated feature columns (names or indices); default: all but the label")
    t.add_argument("--categorical", help="comma-separated text columns (names or indices) to encode")
    t.add_argument("--encoding", choices=("onehot", "hash"), default="onehot")
    t.add_argument("--hash-bits", type=int, default=18, help="with --encoding hash: 2**bits hashed columns")
    t.add_argument("--no-header", action="store_true", help="CSV without a header row (columns are 0, 1, ...)")
    t.add_argument("--zero-based", choices=("auto", "yes", "no"), default="auto", help="LIBSVM index base")
    t.add_argument("--on-bad-row", choices=("error", "skip"), default="error")
    t.add_argument("--metrics", help="write per-step metrics as JSON lines to this file")
    t.add_argument("--checkpoint-dir", help="write checkpoints here (and resume from here with --resume)")
    t.add_argument("--checkpoint-every", help="checkpoint every N steps (100) or every T seconds (30s, 5m); "
                                              "default: only at the end")
    t.add_argument("--resume", action="store_true", help="continue from the newest valid checkpoint in --checkpoint-dir")
    t.add_argument("--max-restarts", type=int, default=0,
                   help="local workers: restart the group this many times when a worker dies (under torchrun, "
                        "pass torchrun's own --max-restarts)")
    t.add_argument("--stream", action="store_true",
                   help="out of core: each worker reads its shard again at every pass instead of holding it "
                        "(gd, lbfgs, bsp, local_sgd)")
    t.add_argument("--out", required=True, help="model directory to write")

    for name, helptext in (("evaluate", "print held-out metrics as one JSON object"),
                           ("predict", "write predictions as CSV")):
        e = sub.add_parser(name, help=helptext)
        e.add_argument("model_dir")
        e.add_argument("data")
        e.add_argument("--label", help="label column (default: the one used in training)")
        e.add_argument("--positive-label", help="map this label value to the model's positive class, others to the negative")
        e.add_argument("--format", choices=FORMATS, default="auto")
        e.add_argument("--on-bad-row", choices=("error", "skip"), default="error")
        if name == "predict":
            e.add_argument("--output", required=True, help="CSV file to write")

    d = sub.add_parser("demo", help="train on synthetic data next to scikit-learn and compare")
    d.add_argument("--rows", type=int, default=200_000)
    d.add_argument("--test-rows", type=int, default=50_000)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--workers", type=int, default=2, help="local worker processes for shardlearn's distributed fit")

    b = sub.add_parser("bench", help="race shardlearn against scikit-learn, VW, Spark, Dask-ML and PyTorch DDP")
    b.add_argument("--size", choices=("quick", "full"), default="quick")
    b.add_argument("--out", required=True, help="folder for bench.jsonl, bench.md and the plots")
    b.add_argument("--datasets", nargs="+", choices=("D1", "D2", "a9a"), default=["D1", "D2", "a9a"])
    b.add_argument("--reps", type=int, default=3, help="repetitions per budget (medians)")
    b.add_argument("--rows", type=int, help="training rows instead of the size's (small test runs)")
    b.add_argument("--only", nargs="+", help="only systems whose name contains one of these words")
    return p


def _estimator(args):
    from shardlearn.sklearn import LinearRegression, LinearSVC, LogisticRegression

    common = dict(alpha=args.alpha, l1_ratio=args.l1_ratio, fit_intercept=not args.no_intercept, solver=args.solver,
                  optimizer=args.optimizer, learning_rate=args.learning_rate, batch_size=args.batch_size,
                  max_iter=args.max_iter, tol=args.tol, random_state=args.random_state, workers=1 if args.workers is None else args.workers,
                  strategy=args.strategy, sync_every=args.sync_every, partition=args.partition,
                  checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
                  max_restarts=args.max_restarts, staleness=args.staleness, servers=args.servers, slicer=args.slicer)
    if args.model == "linear":
        return LinearRegression(**common)
    if args.model in ("hinge", "squared_hinge"):
        return LinearSVC(loss=args.model, **common)
    return LogisticRegression(**common)


def _source_options(args) -> dict:
    zero_based = {"auto": "auto", "yes": True, "no": False}[args.zero_based]
    split = lambda v: [c.strip() for c in v.split(",")] if v else None  # noqa: E731
    return dict(data=args.data, label=args.label, format=args.format, categorical=split(args.categorical),
                features=split(args.features), encoding=args.encoding, hash_bits=args.hash_bits,
                header=not args.no_header, zero_based=zero_based, on_bad_row=args.on_bad_row)


def _train(args):
    from shardlearn.runtime import launch

    world = launch.from_env()
    if args.workers is None:
        args.workers = 1 if world is not None else launch.cpu_count()
    if (world is not None or args.workers > 1 or args.checkpoint_dir or args.max_restarts or args.servers or args.stream
            or (args.strategy is not None and PLANS[args.strategy].group_only)):
        return _train_distributed(args)  # checkpointed runs go through the worker group, which can restart
    from shardlearn.core.errors import DataError
    from shardlearn.data import open as open_source

    src = open_source(**_source_options(args))
    X, y = src.read()
    if np.asarray(y).dtype == object:
        y = np.asarray(y).astype(str)
    if args.positive_label is not None:
        y = map_positive(y, args.positive_label)
    n_classes = len(np.unique(y))
    if args.model == "logistic" and n_classes > 2:
        raise DataError(f"{args.data}: {n_classes} distinct labels for the binary model 'logistic'; "
                        "use --model softmax for more than two classes")
    est = _estimator(args).fit(X, y)
    _save(args, est, {"label": getattr(src, "label", None) if hasattr(src, "encoder") else args.label,
                      "zero_based": getattr(src, "zero_based", None),
                      "encoder": src.encoder.to_json() if hasattr(src, "encoder") else None})
    print(json.dumps({"model_dir": args.out, "rows": int(X.shape[0]), "features": int(X.shape[1]),
                      "skipped": dict(src.skipped), "n_iter": int(est.n_iter_),
                      "objective": float(est.objective(X, y))}))


def _save(args, est, facts):
    if args.metrics:
        with open(args.metrics, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in est.fit_result_.steps)
    est.save(args.out)
    _add_training_facts(args.out, dict(facts, model=args.model, positive_label=args.positive_label,
                                       header=not args.no_header))


def _train_distributed(args):
    """Every worker reads only its shard; under torchrun this process is one of them."""
    from shardlearn.runtime import distributed

    est = _estimator(args)
    cfg = dataclasses.replace(est.train_config(), resume=args.resume, stream=args.stream)
    result = distributed.train_file(args.model, cfg, _source_options(args), args.positive_label)
    if result.params is None:  # a torchrun rank other than 0: rank 0 writes the model
        return
    est.adopt(result)
    info = result.info
    _save(args, est, {"label": info["label"], "zero_based": info["zero_based"], "encoder": info["encoder"]})
    rows = [r.get("rows", 0) for r in result.reports if r.get("role") != "server"]
    resumed = result.reports[0].get("resumed_from")
    print(json.dumps({"model_dir": args.out, "workers": len(rows), "rows": sum(rows), "rows_per_worker": rows,
                      "features": info["n_features"], "skipped": info["skipped"], "n_iter": result.n_iter,
                      **({"resumed_from": resumed} if resumed is not None else {})}))


def _add_training_facts(directory, facts):
    from shardlearn.core import modelfile

    meta, arrays = modelfile.read(directory)
    meta = {k: v for k, v in meta.items() if k not in ("format_version", "arrays_sha256")}
    meta["training"] = facts
    modelfile.write(directory, meta, arrays)


def _load_with_data(args, require_label=True):
    from shardlearn.core import modelfile
    from shardlearn.data import Encoder
    from shardlearn.data import open as open_source
    from shardlearn.sklearn import load

    est = load(args.model_dir)
    facts = modelfile.read(args.model_dir)[0].get("training", {})
    label = args.label if args.label is not None else facts.get("label")
    enc = facts.get("encoder")
    zero_based = facts.get("zero_based")
    src = open_source(args.data, label, format=args.format, n_features=est.n_features_in_,
                      require_label=require_label, header=facts.get("header", True), on_bad_row=args.on_bad_row,
                      zero_based="auto" if zero_based is None else zero_based,
                      encoder=Encoder.from_json(enc) if enc else None)
    X, y = src.read()
    if X.shape[1] != est.n_features_in_:
        raise ValueError(f"{args.data}: {X.shape[1]} features, but the model in {args.model_dir} "
                         f"expects {est.n_features_in_}")
    if require_label and hasattr(est, "classes_"):
        positive = args.positive_label if args.positive_label is not None else facts.get("positive_label")
        if positive is not None:
            y = map_positive(y, positive, est.classes_)
        unknown = np.setdiff1d(np.unique(y), est.classes_)
        if unknown.size:
            hint = "; pass --positive-label V to map a binary file's labels" if len(est.classes_) == 2 else ""
            raise ValueError(f"{args.data}: labels {unknown[:5].tolist()} are not among the model's "
                             f"{len(est.classes_)} classes {_short(est.classes_.tolist())}{hint}")
    return est, X, y, dict(src.skipped)


def _short(items, n=8):
    return str(items) if len(items) <= n else str(items[:n])[:-1] + ", ...]"


def _evaluate(args):
    from shardlearn.evaluation import evaluate

    est, X, y, skipped = _load_with_data(args)
    print(json.dumps(dict(evaluate(est, X, y), **({"skipped": skipped} if skipped else {}))))


def _predict(args):
    from shardlearn.data.writers import write_csv

    est, X, _, skipped = _load_with_data(args, require_label=False)
    cols = {"prediction": est.predict(X)}
    if hasattr(est, "predict_proba"):
        for c, p in zip(est.classes_, est.predict_proba(X).T):
            cols[f"proba_{c}"] = p
    write_csv(args.output, cols)
    print(json.dumps({"rows": int(X.shape[0]), "output": args.output, **({"skipped": skipped} if skipped else {})}))


def _demo(args):
    from shardlearn.demo import run

    run(rows=args.rows, test_rows=args.test_rows, seed=args.seed, workers=args.workers)


def _bench(args):
    """Run ``benchmarks/harness.py`` of the source checkout this package comes from."""
    import os
    import subprocess

    from shardlearn.core.errors import ConfigError

    harness = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "harness.py")
    if not os.path.exists(harness):
        raise ConfigError(f"{harness}: not found; shardlearn bench runs from a source checkout (pip install -e .)")
    cmd = [sys.executable, harness, "--size", args.size, "--out", args.out, "--reps", str(args.reps),
           "--datasets", *args.datasets]
    cmd += ["--rows", str(args.rows)] if args.rows else []
    cmd += ["--only", *args.only] if args.only else []
    if subprocess.call(cmd) != 0:
        raise ConfigError("the benchmark harness failed (its output is above)")


COMMANDS = {"train": _train, "evaluate": _evaluate, "predict": _predict, "demo": _demo, "bench": _bench}


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except Exception as e:  # noqa: BLE001 - every error becomes one line unless --debug
        if args.debug:
            raise
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"shardlearn: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
