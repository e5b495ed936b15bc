"""``shardlearn evaluate`` and ``shardlearn predict``: a saved model on new rows, read the
way its training data was read (label, header, delimiter, encoder, index base)."""
from __future__ import annotations

import json
import sys
import warnings

import numpy as np

from shardlearn.cli.train import unescape
from shardlearn.core.errors import ConfigError, DataError
from shardlearn.data.labels import map_positive


def evaluate(args) -> None:
    from shardlearn.evaluation import evaluate as metrics

    est, X, y, skipped, _, tasks = _load_with_data(args)
    print(json.dumps(dict(metrics(est, X, y, tasks=tasks), **({"skipped": skipped} if skipped else {}))))


def predict(args) -> None:
    from shardlearn.data.writers import write_csv
    from shardlearn.evaluation import route

    ids = [c.strip() for c in args.id.split(",")] if args.id else []
    est, X, _, skipped, passed, tasks = _load_with_data(args, require_label=False, ids=ids)
    by = route(est, tasks)
    cols = dict(passed)
    cols["prediction"] = est.predict(X, **by)
    if hasattr(est, "predict_proba"):
        for c, p in zip(est.classes_, est.predict_proba(X, **by).T):
            cols[f"proba_{c}"] = p
    to_stdout = args.output == "-"
    write_csv(sys.stdout.buffer if to_stdout else args.output, cols)
    if to_stdout:
        sys.stdout.flush()
    summary = {"rows": int(X.shape[0]), "output": "stdout" if to_stdout else args.output,
               **({"skipped": skipped} if skipped else {})}
    print(json.dumps(summary), file=sys.stderr if to_stdout else sys.stdout)  # stdout holds the CSV


def export(args) -> None:
    """``shardlearn export DIR --onnx FILE``: the model and, for table training, its encoding."""
    from shardlearn.core import modelfile
    from shardlearn.data import Encoder
    from shardlearn.sklearn import load

    est = load(args.model_dir)
    if not hasattr(est, "to_onnx"):
        raise ConfigError(f"{args.model_dir}: a {type(est).__name__} cannot be exported to ONNX: linear, logistic "
                          "and SVM models only (a multi-task or grouped model needs each row's task or group; online "
                          "learners hash text lines)")
    enc = modelfile.read(args.model_dir)[0].get("training", {}).get("encoder")
    est.to_onnx(args.onnx, Encoder.from_json(enc) if enc else None)
    inputs = (enc["numeric"] + enc["categorical"]) if enc else ["X"]
    print(json.dumps({"onnx": args.onnx, "model": type(est).__name__, "inputs": [str(c) for c in inputs]}))


def _load_with_data(args, require_label=True, ids=()):
    from shardlearn.core import modelfile
    from shardlearn.data import Encoder
    from shardlearn.data import open as open_source
    from shardlearn.sklearn import load

    est = load(args.model_dir)
    facts = modelfile.read(args.model_dir)[0].get("training", {})
    label = args.label if args.label is not None else facts.get("label")
    enc = facts.get("encoder")
    zero_based = facts.get("zero_based")
    delimiter = unescape(args.delimiter) if args.delimiter is not None else facts.get("delimiter")
    # a joint multi-task model or one model per group: each row's task (group) is read too
    task_column = facts.get("task_column") or facts.get("group_column")
    src = open_source(args.data, label, format=args.format, n_features=est.n_features_in_,
                      require_label=require_label, header=facts.get("header", True), on_bad_row=args.on_bad_row,
                      zero_based="auto" if zero_based is None else zero_based, delimiter=delimiter,
                      encoder=Encoder.from_json(enc) if enc else None, key=task_column)
    if (ids or task_column) and not hasattr(src, "encoder"):
        what = "--id copies columns" if ids else f"the model reads each row's task or group from column {task_column!r}"
        raise ConfigError(f"{args.data}: {what} of a CSV or Parquet file; this file has no named columns")
    passed: dict = {}
    wanted = list(dict.fromkeys(list(ids) + ([src.key] if task_column else [])))
    X, y = src.read(passthrough=wanted, into=passed) if wanted else src.read()
    tasks = None
    if task_column:
        tasks = passed[src.key].astype(str)
        if src.key not in ids:
            del passed[src.key]
    if hasattr(src, "encoder") and enc:
        _warn_unused(args.data, src, ids)
    if X.shape[1] != est.n_features_in_:
        raise DataError(f"{args.data}: {X.shape[1]} features, but the model in {args.model_dir} "
                        f"expects {est.n_features_in_}")
    if require_label and getattr(est, "classes_", None) is not None:
        positive = args.positive_label if args.positive_label is not None else facts.get("positive_label")
        if positive is not None:
            y = map_positive(y, positive, est.classes_)
        unknown = np.setdiff1d(np.unique(y), est.classes_)
        if unknown.size:
            hint = "; pass --positive-label V to map a binary file's labels" if len(est.classes_) == 2 else ""
            raise DataError(f"{args.data}: labels {unknown[:5].tolist()} are not among the model's "
                            f"{len(est.classes_)} classes {_short(est.classes_.tolist())}{hint}")
    return est, X, y, dict(src.skipped), passed, tasks


def _warn_unused(path, src, ids) -> None:
    """Columns of the file the model does not read are ignored: said once, not silently."""
    used = set(src.encoder.numeric) | set(src.encoder.categorical) | {src.label, src.key} | set(ids)
    extra = [c for c in src.column_names() if c not in used]
    if extra:
        warnings.warn(f"{path}: {len(extra)} column(s) the model was not trained with are ignored: "
                      f"{_short(extra)}", UserWarning, stacklevel=2)


def _short(items, n=8):
    return str(items) if len(items) <= n else str(items[:n])[:-1] + ", ...]"
