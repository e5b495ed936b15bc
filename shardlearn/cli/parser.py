"""The ``shardlearn`` command's options: every one described, with its default in ``--help``.

>>> args = build().parse_args(["train", "d.csv", "--label", "y", "--out", "m"])
>>> args.command, args.workers, args.alpha, args.delimiter
('train', None, 0.0001, None)
"""
from __future__ import annotations

import argparse

from shardlearn.runtime.config import PLANS, SOLVER_STRATEGY

MODEL_CHOICES = ("linear", "logistic", "softmax", "hinge", "squared_hinge")
FORMATS = ("auto", "csv", "libsvm", "npz", "npy", "parquet")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other error
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Help(argparse.HelpFormatter):
    """Adds ``(default: X)`` to an option's help where it has a default worth saying."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (default not in (None, False, argparse.SUPPRESS) and action.option_strings and "default" not in text):
            text += " (default: %(default)s)"
        return text


def parse(argv=None) -> argparse.Namespace:
    """The command line, with ``train --config JOB.toml``'s options as defaults that the
    command line's own flags override (``cli/jobfile.py``)."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    p = build()
    if "train" in argv:
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--config")
        known, _ = pre.parse_known_args(argv)
        if known.config:
            from shardlearn.cli import jobfile
            from shardlearn.core.errors import ConfigError

            try:
                p.train_parser.set_defaults(**jobfile.defaults(known.config, p.train_parser))
            except ConfigError as e:
                p.train_parser.error(str(e))  # one line, exit 2, like any bad option
    return p.parse_args(argv)


def _tol(text: str):
    """``--tol``: a number, or ``none`` to run every iteration."""
    if text.lower() in ("none", "off"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def _sub(sub, name, helptext):
    return sub.add_parser(name, help=helptext, description=helptext, formatter_class=_Help)


def build() -> argparse.ArgumentParser:
    from shardlearn import __version__

    p = _Parser(prog="shardlearn", formatter_class=_Help,
                description="Distributed machine learning: train on local worker processes or many machines, "
                            "evaluate, predict.")
    p.add_argument("--version", action="version", version=f"shardlearn {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p.train_parser = _sub(sub, "train", "train a model on a data file and save it")
    _train(p.train_parser)
    for name, helptext in (("evaluate", "print held-out metrics as one JSON object"),
                           ("predict", "write predictions as CSV")):
        _use(_sub(sub, name, helptext), name)
    e = _sub(sub, "export", "write a trained model in another format (ONNX, for onnxruntime in any language)")
    e.add_argument("model_dir", help="a model directory written by shardlearn train")
    e.add_argument("--onnx", required=True, metavar="FILE", help="the ONNX file to write")
    d = _sub(sub, "demo", "train on synthetic data next to scikit-learn and compare")
    d.add_argument("--rows", type=int, default=200_000, help="training rows")
    d.add_argument("--test-rows", type=int, default=50_000, help="held-out rows")
    d.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    d.add_argument("--workers", type=int, default=2, help="local worker processes for shardlearn's distributed fit")
    m = _sub(sub, "make-data", "write synthetic data (BENCHMARKS.md's D1) to a CSV or LIBSVM file, to try the commands")
    m.add_argument("out", help="file to write: .csv (header, label column 'target') or .libsvm/.svm")
    m.add_argument("--rows", type=int, default=100_000, help="rows to write")
    m.add_argument("--features", type=int, default=20, help="features per row")
    m.add_argument("--split", choices=("train", "test"), default="train",
                   help="train or held-out rows (the same model draws both)")
    m.add_argument("--seed", type=int, default=0, help="seed of the data")
    _learn(_sub(sub, "learn", "learn from a stream of examples one at a time (a file, '-' for stdin, a followed "
                               "file, Redis Streams), printing progressive validation"))
    _serve(_sub(sub, "serve", "serve predictions of a model learned online over HTTP, hot-swapping each newer "
                              "checkpoint"))
    b = _sub(sub, "bench", "race shardlearn against scikit-learn, VW, Spark, Dask-ML and PyTorch DDP")
    b.add_argument("--size", choices=("quick", "full"), default="quick", help="benchmark size")
    b.add_argument("--out", required=True, help="folder for bench.jsonl, bench.md and the plots")
    b.add_argument("--datasets", nargs="+", choices=("D1", "D2", "a9a"), default=["D1", "D2", "a9a"],
                   help="datasets to run")
    b.add_argument("--reps", type=int, default=3, help="repetitions per budget (medians)")
    b.add_argument("--rows", type=int, help="training rows instead of the size's (small test runs)")
    b.add_argument("--only", nargs="+", help="only systems whose name contains one of these words")
    return p


def _learn(t):
    from shardlearn.online import FORMATS as STREAM_FORMATS
    from shardlearn.runtime.config import PER_EXAMPLE_RULES

    t.add_argument("source", help="a file of examples, one per line, '-' for standard input, a Redis stream "
                                  "(redis://HOST:PORT/STREAM?group=G&consumer=C, one example in each entry's 'data') "
                                  "or a socket to listen on (tcp://HOST:PORT, one example a line)")
    t.add_argument("--format", choices=STREAM_FORMATS, default="vw",
                   help="vw: Vowpal Wabbit's text ([label] [importance] |namespace feature[:value] ...); libsvm; "
                        "jsonl: a JSON object a line; csv: a header, then rows (--label names the label field)")
    t.add_argument("--label", help="jsonl, csv: the field (column) holding the label")
    t.add_argument("--positive-label", help="this label value is the positive class, any other negative (default: "
                                            "labels > 0 are positive)")
    t.add_argument("--model-dir", required=True, help="where the model and its checkpoints go; a restart with the "
                                                      "same directory resumes from its newest checkpoint")
    t.add_argument("--loss", choices=("logistic", "squared", "hinge", "squared_hinge"), default="logistic",
                   help="classification (labels > 0 are positive: -1/+1 or 0/1) or squared (regression)")
    t.add_argument("--hash-bits", type=int, default=18, help="2**bits hashed feature columns (1 to 30)")
    t.add_argument("--rule", choices=PER_EXAMPLE_RULES, default="normalized",
                   help="update rule: normalized (VW's default: adaptive, scale-free, importance-invariant), "
                        "adagrad, ftrl, sgd")
    t.add_argument("--learning-rate", type=float, help="the rule's learning rate (default: 0.75 for normalized, 0.5 "
                                                       "ftrl, 0.1 adagrad, 0.05 sgd)")
    t.add_argument("--power-t", type=float, default=0.0, help="sgd: step lr / t^power_t")
    t.add_argument("--l1", type=float, default=0.0, help="L1 strength per unit of importance weight (VW's --l1)")
    t.add_argument("--l2", type=float, default=0.0, help="L2 strength per unit of importance weight (VW's --l2)")
    t.add_argument("--no-intercept", action="store_true", help="learn no intercept")
    t.add_argument("-q", "--quadratic", action="append", metavar="AB",
                   help="cross every feature of namespaces starting with A with those starting with B (VW's -q; "
                        "repeatable; ' ' is the default namespace)")
    t.add_argument("--checkpoint-every", help="checkpoint every N examples (100000) or T seconds (30s, 5m); "
                                              "always at the end")
    t.add_argument("--holdout-every", type=int, metavar="K",
                   help="score every K-th example without learning from it and report its loss apart "
                        "(holdout_* in the JSON line)")
    t.add_argument("--on-bad-row", choices=("error", "skip"), default="skip",
                   help="skip: drop a bad line and count it by reason (in the JSON line); error: stop, naming "
                        "its line")
    t.add_argument("--follow", action="store_true", help="at the end of the file, wait for more lines (tail -f)")
    t.add_argument("--stop-when-idle", type=float, help="with --follow or a Redis stream: stop after this many "
                                                        "seconds without a new example")
    t.add_argument("--workers", type=int, default=1,
                   help="learner processes: above 1, each reads its own part (a Redis consumer C-<rank> of the "
                        "group, or every N-th line of a file) and they share the model on a parameter server")
    t.add_argument("--strategy", choices=("asp", "ssp"), default="asp",
                   help="with --workers: asp (nobody waits) or ssp (a learner waits while it is more than "
                        "--staleness blocks ahead of the slowest)")
    t.add_argument("--staleness", type=int, default=2, help="ssp: blocks a learner may run ahead of the slowest")
    t.add_argument("--batch-size", type=int, default=4096,
                   help="with --workers: examples a learner learns between a pull and a push of the shared state")
    t.add_argument("--quiet", action="store_true", help="no progressive validation table on stderr")
    g = t.add_argument_group("serving predictions while learning")
    g.add_argument("--serve", metavar="HOST:PORT", help="serve predictions over HTTP meanwhile (POST /predict, "
                                                       "/feedback; GET /health, /model, /metrics) from a snapshot "
                                                       "published at every checkpoint (--checkpoint-every, default "
                                                       "10s with --serve); port 0: any free port")
    _serving_options(g)
    g.add_argument("--feedback-ttl", type=float, default=600.0,
                   help="seconds the features of a prediction made with an id are kept for its POST /feedback")
    g.add_argument("--feedback-from", metavar="SOURCE",
                   help="a labels stream for predictions made with an id: JSON lines {\"id\": ..., \"label\": ..., "
                        "\"weight\": ...} from a file (followed) or redis://HOST:PORT/STREAM?group=G&consumer=C")
    g.add_argument("--serve-staleness", type=float, default=1.0, metavar="SECONDS",
                   help="with --workers: learner 0 pulls the model from the parameter server at least this often "
                        "to serve it")


def _serving_options(g):
    g.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every route but /health (default: "
                                   "the SHARDLEARN_TOKEN environment variable, if set)")
    g.add_argument("--max-body", type=int, default=8 << 20, help="largest request body in bytes (larger: 413)")


def _serve(t):
    t.add_argument("model_dir", help="a model directory of shardlearn learn: its newest checkpoint is served, and "
                                     "each newer one a learner commits there is swapped in")
    t.add_argument("--bind", default="127.0.0.1:8000", metavar="HOST:PORT",
                   help="address to listen on (0.0.0.0:PORT to be reachable from other machines)")
    _serving_options(t)


def _data_options(t):
    t.add_argument("--label", help="label column of a CSV or Parquet file: a name or a 0-based index")
    t.add_argument("--format", choices=FORMATS, default="auto", help="data format (auto: from the name, else "
                                                                      "from the first line)")
    t.add_argument("--delimiter", help="CSV field separator, e.g. ';' or '\\t' (default: found in the first line "
                                       "among , tab ; |)")
    t.add_argument("--on-bad-row", choices=("error", "skip"), default="error",
                   help="error: stop at the first bad row, naming its line; skip: drop and count bad rows")
    t.add_argument("--positive-label", help="binary models: this label value is the positive class, all others "
                                            "negative")


def _train(t):
    t.add_argument("data", nargs="?", help="CSV (plain or .gz), LIBSVM, Parquet file or directory, .npy or .npz")
    t.add_argument("--out", help="model directory to write (a new or empty directory, or a model); required")
    t.add_argument("--config", metavar="JOB.toml",
                   help="read the options from a TOML job file (keys: these options' names with underscores, e.g. "
                        "data, out, alpha, max_iter, workers, launcher); flags given here override it")
    t.add_argument("--launcher", choices=("local", "torchrun", "ray", "dask"), default="local",
                   help="local: this machine's worker processes; torchrun: the job runs under torchrun on every "
                        "machine (torchrun ... -m shardlearn train --config JOB.toml); ray, dask: this process reads "
                        "the file and --workers ranks train on the cluster at RAY_ADDRESS / DASK_SCHEDULER_ADDRESS "
                        "(else a local one)")
    _data_options(t)
    g = t.add_argument_group("model")
    g.add_argument("--model", choices=MODEL_CHOICES, default="logistic", help="loss: linear (squared), logistic "
                                                                              "(binary), softmax, hinge, squared_hinge")
    g.add_argument("--alpha", type=float, default=1e-4, help="penalty strength (>= 0)")
    g.add_argument("--l1-ratio", type=float, default=0.0, help="share of L1 in the penalty, in [0, 1]")
    g.add_argument("--no-intercept", action="store_true", help="fit no intercept")
    g.add_argument("--task-column", metavar="COL",
                   help="a joint multi-task model (linear or logistic): COL names each row's task; every task "
                        "predicts with a shared part plus its own (--alpha penalises the shared part)")
    g.add_argument("--task-alpha", type=float, default=1.0,
                   help="with --task-column: penalty of each task's own part (large: one pooled model)")
    g.add_argument("--group-by", metavar="COL",
                   help="one independent model per value of column COL (groups spread over the workers by hash; "
                        "predict routes each row by COL)")
    g.add_argument("--fallback", choices=("none", "pooled"), default="none",
                   help="with --group-by: what answers a group never seen in training (none: an error; pooled: "
                        "one more model fitted on every row)")
    g = t.add_argument_group("features")
    g.add_argument("--features", help="comma-separated feature columns (names or indices); default: all but the "
                                      "label")
    g.add_argument("--categorical", help="comma-separated text columns (names or indices) to encode")
    g.add_argument("--encoding", choices=("onehot", "hash"), default="onehot", help="how text columns are encoded")
    g.add_argument("--hash-bits", type=int, default=18, help="with --encoding hash: 2**bits columns (1 to 30)")
    g.add_argument("--no-header", action="store_true", help="CSV without a header row (columns are 0, 1, ...)")
    g.add_argument("--zero-based", choices=("auto", "yes", "no"), default="auto",
                   help="LIBSVM index base (auto: 0-based when an index 0 occurs)")
    g = t.add_argument_group("optimisation")
    g.add_argument("--solver", choices=tuple(SOLVER_STRATEGY),
                   help="lbfgs and gd: full-batch; sgd: stochastic with --optimizer (default: sgd for the "
                        "stochastic strategies, else lbfgs)")
    g.add_argument("--optimizer", help="for --solver sgd: normalized (per example, scale-free; the default in one "
                                       "process, local_sgd and hogwild), adagrad (the default for bsp over workers, "
                                       "ssp, asp), ftrl, sgd, momentum, nesterov, adam")
    g.add_argument("--learning-rate", type=float, help="for --solver sgd (default: the optimizer's; 3 for normalized "
                                                       "under the linear schedule)")
    g.add_argument("--schedule", choices=("constant", "invscaling", "linear"),
                   help="for --solver sgd: the rate over the fit (default: linear for the normalized rule, falling "
                        "from the rate to 0 over --max-iter epochs; else constant)")
    g.add_argument("--batch-size", type=int, default=256, help="for mini-batch sgd: rows per step (1: per example)")
    g.add_argument("--max-iter", type=int, help="iterations (lbfgs, gd; default 300) or epochs (sgd; default 5)")
    g.add_argument("--tol", type=_tol, default=1e-6, help="stop when the objective improves less than this "
                                                          "('none': run all --max-iter)")
    g.add_argument("--random-state", type=int, help="seed of shuffles and random partitions")
    g = t.add_argument_group("distribution")
    g.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: one per 128 MB of data, at most one per core; the output "
                        "says how many ran and why)")
    g.add_argument("--strategy", choices=tuple(PLANS),
                   help="how workers agree (default: the solver's: lbfgs, gd, or bsp for sgd); ssp and asp run "
                        "over the parameter server, hogwild on one shared vector")
    g.add_argument("--partition", choices=("contiguous", "random", "stratified"), default="contiguous",
                   help="which rows each worker reads")
    g.add_argument("--staleness", type=int, default=4, help="ssp: how many clocks a worker may run ahead")
    g.add_argument("--servers", type=int, default=0,
                   help="dedicated parameter-server processes (0: every worker hosts one shard)")
    g.add_argument("--slicer", choices=("range", "hash"), default="range", help="parameter-server key -> shard")
    g.add_argument("--sync-every", type=int,
                   help="local_sgd: average parameters every H batches (default 64 per example, fewer under sign or a "
                        "sparsifier: at least 64 averages an epoch; 8 mini-batch); "
                        "bsp/asp/ssp per example: merge, or pull and push, every H batches (default: bsp 1; "
                        "asp/ssp as many as leave a worker 256 steps an epoch, 1 to 16)")
    g.add_argument("--device", help="lbfgs, gd: the full-batch products on a torch device, cpu or cuda[:N] (default: "
                                    "a CUDA GPU when present, else numpy on the host)")
    g.add_argument("--compression", default="none",
                   help="codec of what the workers exchange: none, fp16, bf16, int8, sign, topk:F, randk:F, a "
                        "sparsifier then a quantizer joined by + (topk:0.1+int8), powersgd:R (matrix weights: "
                        "softmax); gd, lbfgs, local_sgd, mini-batch bsp, parameter-server pushes")
    g.add_argument("--no-error-feedback", dest="error_feedback", action="store_false",
                   help="drop what a lossy codec leaves out instead of sending it at later steps")
    g.add_argument("--stream", action="store_true",
                   help="out of core: each worker reads its shard again at every pass instead of holding it "
                        "(gd, lbfgs, bsp, local_sgd; ssp, asp, hogwild and bsp over servers per example)")
    g = t.add_argument_group("checkpoints and output")
    g.add_argument("--checkpoint-dir", help="write checkpoints here (and resume from here with --resume)")
    g.add_argument("--checkpoint-every", help="checkpoint every N steps (100) or every T seconds (30s, 5m); "
                                              "default: only at the end")
    g.add_argument("--resume", action="store_true", help="continue from the newest valid checkpoint in "
                                                         "--checkpoint-dir")
    g.add_argument("--max-restarts", type=int, default=0,
                   help="local workers: restart the group this many times when a worker dies (under torchrun, "
                        "pass torchrun's own --max-restarts)")
    g.add_argument("--metrics", help="write per-step metrics as JSON lines to this file")


def _use(e, name):
    e.add_argument("model_dir", help="a model directory written by shardlearn train")
    e.add_argument("data", help="rows to score, in any format train reads")
    _data_options(e)
    e.set_defaults(label=None)  # the label the model was trained with
    if name == "predict":
        e.add_argument("--output", default="-", help="CSV file to write ('-': standard output)")
        e.add_argument("--id", help="comma-separated columns to copy into the output before the predictions "
                                    "(names or 0-based indices)")
