"""Compression on the allreduce strategies (issue 18): for a9a, D1 and D2 (``--rows`` rows
of each synthetic set) on 2 and 4 local workers over loopback, each codec's bytes sent per
rank and step (the collective's own count of what it handed to gloo), fit seconds and
held-out log-loss over L* (a tight one-process fit), against no compression in the same
run; and each codec's own cost (encode + decode seconds per coordinate, one process).

Strategies: ``bsp`` with AdaGrad mini-batches, per-example ``local_sgd`` and ``local_sgd`` with
AdaGrad mini-batches (every codec: the last averages dense changes, each worker's AdaGrad sums its own),
``lbfgs`` (the quantizers: a line search needs a near-true gradient), per-example ``bsp``
(the quantizers: its merges of sparse changes, ``strategies/coded_changes.py``).

    python benchmarks/bench_compression.py --out benchmarks/results/compression
    python benchmarks/bench_compression.py --strategies "bsp per example" --out benchmarks/results/compression-bsp
    python benchmarks/bench_compression.py --datasets D2 --rows 2000000 --workers 2 \
        --strategies "local_sgd per example" --out benchmarks/results/compression-d2-2m

D2's mini-batch ``bsp`` (a dense 4M-wide gradient a step) runs only when ``--strategies`` names it;
``--codecs`` replaces the codecs swept (``none`` first), e.g. ``sign`` composed with a sparsifier:

    python benchmarks/bench_compression.py --datasets D2 --strategies "bsp adagrad" \
        --codecs none sign topk:0.005+sign topk:0.01+sign topk:0.01+int8 --out benchmarks/results/compression-d2-sign
    python benchmarks/bench_compression.py --datasets D2 --rows 2000000 --strategies "local_sgd adagrad" \
        --codecs none sign int8 topk:0.1+int8 --out benchmarks/results/compression-d2-local-sgd-adagrad
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402

STOCHASTIC = ["none", "fp16", "int8", "topk:0.1+int8", "sign", "topk:0.01", "topk:0.01/no-ef"]
QUANTIZERS = ["none", "fp16", "bf16", "int8"]


def datasets(rows: int, data_dir: str, only=None):
    """``(name, X, y, X_test, y_test, alpha)`` of a9a, D1 and D2 (``only``: these names)."""
    for ds in _datasets(rows, data_dir):
        if only is None or ds[0] in only:
            yield ds


def _datasets(rows: int, data_dir: str):
    from sklearn.datasets import load_svmlight_file

    from shardlearn.data.synthetic import make_d1, make_d2

    X, y = load_svmlight_file(os.path.join(data_dir, "a9a", "a9a"), n_features=123)
    Xt, yt = load_svmlight_file(os.path.join(data_dir, "a9a", "a9a.t"), n_features=123)
    yield "a9a", X.tocsr(), (y > 0).astype(int), Xt.tocsr(), (yt > 0).astype(int), 1e-4
    X, y = make_d1(rows)
    Xt, yt = make_d1(rows // 4, split="test")
    yield "D1", X, y, Xt, yt, 1e-6
    X, y = make_d2(rows)
    Xt, yt = make_d2(rows // 4, split="test")
    yield "D2", X, y, Xt, yt, 1e-6


def runs(name: str, only=None):
    """``(strategy label, estimator options, codecs)`` for a dataset (``only``: these labels)."""
    epochs = 10 if name == "a9a" else 2
    out = [("bsp adagrad", dict(solver="sgd", strategy="bsp", optimizer="adagrad", max_iter=epochs), STOCHASTIC),
           ("local_sgd per example", dict(solver="sgd", strategy="local_sgd", max_iter=epochs), STOCHASTIC),
           ("local_sgd adagrad", dict(solver="sgd", strategy="local_sgd", optimizer="adagrad", max_iter=epochs),
            STOCHASTIC),
           ("lbfgs", dict(solver="lbfgs"), QUANTIZERS),
           ("bsp per example", dict(solver="sgd", strategy="bsp", max_iter=epochs), QUANTIZERS)]
    if name == "D2" and only is None:  # 4M columns: a mini-batch's dense gradient per step (what issue 14
        out = out[1:]  # removes) is slow; it runs when --strategies names it
    return [r for r in out if only is None or r[0] in only]


def codec_cost(n: int = 1 << 20) -> dict:
    """Encode + decode seconds per coordinate of each codec (with error feedback), one process."""
    from shardlearn.comm import codecs

    v = np.random.default_rng(0).normal(size=n)
    out = {}
    for spec in [s for s in STOCHASTIC if s not in ("none", "topk:0.01/no-ef")] + ["bf16", "randk:0.1"]:
        c = codecs.parse(spec)
        state = codecs.init(c, n)
        t = time.perf_counter()
        for step in range(5):
            payload, state = codecs.encode(c, v, state)
            codecs.decode(c, payload, n, step)
        out[spec] = (time.perf_counter() - t) / 5 / n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--workers", default="2,4")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    ap.add_argument("--render", action="store_true", help="only redraw OUT/compression.md from its .jsonl")
    ap.add_argument("--strategies", nargs="+", default=None, help="only these strategy labels (e.g. 'lbfgs')")
    ap.add_argument("--datasets", nargs="+", default=None, help="only these of a9a, D1, D2")
    ap.add_argument("--codecs", nargs="+", default=None,
                    help="these codecs instead of each strategy's list (none first: the others' reference)")
    args = ap.parse_args()
    if args.render:
        return redraw(os.path.join(args.out, "compression.jsonl"), args.rows)
    os.makedirs(args.out, exist_ok=True)
    warnings.simplefilter("ignore")
    from sklearn.metrics import log_loss

    import shardlearn

    rows = []
    for name, X, y, Xt, yt, alpha in datasets(args.rows, args.data, args.datasets):
        for _, kw, _ in runs(name, args.strategies):  # the compiled kernels built before any timed fit
            shardlearn.LogisticRegression(alpha=alpha, workers=1, **dict(kw, max_iter=1)).fit(X[:2000], y[:2000])
        best = shardlearn.LogisticRegression(alpha=alpha, tol=1e-9, max_iter=2000, workers=1).fit(X, y)
        lstar = log_loss(yt, best.predict_proba(Xt)[:, 1])
        print(f"{name}: {X.shape[0]:,} x {X.shape[1]:,}, L* {lstar:.5f}", flush=True)
        for label, kw, specs in runs(name, args.strategies):
            specs = args.codecs or specs
            for workers in [int(w) for w in args.workers.split(",")]:
                # the worker group started (and its imports done) before any timed fit
                shardlearn.LogisticRegression(alpha=alpha, workers=workers, **kw).fit(X[:2000], y[:2000])
                base = None
                for spec in specs:
                    codec, ef = spec.split("/")[0], not spec.endswith("/no-ef")
                    est = shardlearn.LogisticRegression(alpha=alpha, workers=workers, random_state=0,
                                                        compression=codec, error_feedback=ef, **kw)
                    t = time.perf_counter()
                    est.fit(X, y)
                    secs = time.perf_counter() - t
                    steps = est.fit_result_.steps
                    sent = sum(s.get("bytes_sent", 0) for s in steps)
                    later = steps[1:] or steps  # the first step also holds the setup's agreements
                    rec = {"dataset": name, "strategy": label, "workers": workers, "codec": spec, "seconds": secs,
                           "iterations": int(est.n_iter_), "bytes_sent_rank0": int(sent),
                           "step_bytes_rank0": sum(s.get("bytes_sent", 0) for s in later) / len(later),
                           "step_wire_bytes_rank0": sum(s.get("wire_bytes_sent", 0) for s in later) / len(later),
                           "held_out_over_L": log_loss(yt, est.predict_proba(Xt)[:, 1]) / lstar}
                    base = rec if spec == "none" else base
                    rec["bytes_ratio"] = base["step_bytes_rank0"] / max(rec["step_bytes_rank0"], 1)
                    rec["loss_vs_none"] = rec["held_out_over_L"] / base["held_out_over_L"]
                    rows.append(rec)
                    print(f"  {label} x{workers} {spec}: {secs:.2f} s, {sent:,} B ({rec['bytes_ratio']:.1f}x fewer), "
                          f"{rec['held_out_over_L']:.5f} x L*", flush=True)
    cost = codec_cost()
    machine = facts()
    save(args.out, "compression", rows + [{"codec_cost_s_per_coordinate": cost}], machine,
         render(rows, cost, machine, args.rows))


def render(rows: list, cost: dict, machine: dict, n_rows: int) -> list:
    """The Markdown table of a run's records (``--render`` redraws it from a saved ``.jsonl``)."""
    lines = ["# Compression (benchmarks/bench_compression.py)", "",
             f"Loopback (127.0.0.1), local workers; a9a whole, D1 and D2 the first {n_rows:,} rows (test: a "
             "quarter as many), alpha 1e-4 (a9a) and 1e-6. Bytes: sent by rank 0 per iteration (lbfgs) or epoch "
             "(bsp, local_sgd: 10 epochs on a9a, 2 on D1 and D2), the mean over every step but the first (which "
             "also holds the setup's agreements: active columns, scaling, alike for every codec); counted: as its "
             "collectives counted them; on the wire: what its TCP connections carried (TCP_INFO, "
             "`shardlearn/comm/wire.py`). The plain path's ring allreduce moves 2(p-1)/p float64 vectors per sum; "
             "a quantizer beyond 2 workers the same in two phases at its width, a sparsifier an allgather of p-1 "
             "payloads (whose saving shrinks as workers are added). `/no-ef`: error feedback off. lbfgs "
             "runs to its default tolerance. One run each, this machine (2 cores: 4 workers take turns).",
             f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores.", "",
             "| dataset | strategy | workers | codec | iterations | bytes per iteration, counted (rank 0) | on the "
             "wire | fewer than none (wire) | fit s | held-out / L* | vs none |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    base = {}
    for r in rows:
        per, wire = r["step_bytes_rank0"], r["step_wire_bytes_rank0"]
        key = (r["dataset"], r["strategy"], r["workers"])
        base.setdefault(key, (per, wire))
        lines.append(f"| {r['dataset']} | {r['strategy']} | {r['workers']} | {r['codec']} | {r['iterations']} | "
                     f"{per:,.0f} | {wire:,.0f} | {base[key][0] / max(per, 1):.1f}x ({base[key][1] / max(wire, 1):.1f}x)"
                     f" | {r['seconds']:.2f} | {r['held_out_over_L']:.5f} | {r['loss_vs_none']:.4f} |")
    lines += ["", "Codec cost, encode + decode with error feedback, one process, 2^20 coordinates:", "",
              "| codec | ns per coordinate |", "|---|---|"]
    lines += [f"| {k} | {v * 1e9:.1f} |" for k, v in cost.items()]
    return lines


def redraw(path: str, n_rows: int) -> None:
    """Rewrite ``compression.md`` next to a saved ``compression.jsonl`` with ``render``."""
    recs = [json.loads(line) for line in open(path)]
    rows = [r for r in recs if "codec" in r]
    cost = next(r["codec_cost_s_per_coordinate"] for r in recs if "codec_cost_s_per_coordinate" in r)
    lines = render(rows, cost, recs[0]["machine"], n_rows)
    with open(os.path.join(os.path.dirname(path), "compression.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
