"""Parameter-server benchmarks (issue 5).

1. Stragglers (``--part stragglers``): 2 workers + 1 server on a9a, worker 1
   slowed 3x by an injected sleep; bsp, ssp with s = 1, 2, 4, 8, and asp. Rank 0
   pulls the whole model every ``--snapshot-every`` steps; each snapshot's
   held-out log-loss against its wall time gives the loss-vs-time curve, and the
   first snapshot at <= 1.01 x L* the time to target.
2. D2 (``--part d2``): 2 workers, time to 1.01 x L* for ssp and asp (snapshots),
   allreduce bsp (epoch budgets) and Vowpal Wabbit (pass budgets) in the same run.

    python benchmarks/bench_ps.py --part stragglers --out benchmarks/results
    python benchmarks/bench_ps.py --part d2 --rows 2000000 --out benchmarks/results
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from machine import facts  # noqa: E402
from systems import write_vw  # noqa: E402

import shardlearn  # noqa: E402
from shardlearn.runtime import group  # noqa: E402
from shardlearn.runtime.spill import Spill  # noqa: E402
from shardlearn.runtime.train import TrainConfig  # noqa: E402

ALPHA = 1e-6


def logloss(w, b, Xt, yt) -> float:
    z = np.asarray(Xt @ w).ravel() + b
    return float(np.mean(np.logaddexp(0, z) - yt * z))


def lstar_of(X, y, Xt, yt) -> float:
    ref = shardlearn.LogisticRegression(alpha=ALPHA, tol=1e-10, max_iter=2000).fit(X, y)
    return logloss(ref.coef_.ravel(), float(ref.intercept_[0]), Xt, yt)


def ps_curve(X, y, Xt, yt, cfg: TrainConfig, snapshot_every: int, slow=None) -> dict:
    """One parameter-server fit with snapshots: ``{"seconds", "curve": [(t, loss)]}``. ``slow``:
    ``{"rank": r, "factor": f}`` throttles worker r's process f times (SIGSTOP/SIGCONT,
    ``group.throttle``; results before 2026-12 slept inside the worker's step instead)."""
    import contextlib

    workers = group.get(cfg.processes)
    straggler = group.throttle(workers.pids[slow["rank"]], slow["factor"]) if slow else contextlib.nullcontext()
    with Spill(X, y.astype(np.float64)) as spec, straggler:
        t = time.perf_counter()
        res = workers.run("fit_arrays", model="logistic", cfg=dataclasses.asdict(cfg), spill=spec, n_outputs=1,
                          snapshot_every=snapshot_every)
        seconds = time.perf_counter() - t
    snaps = next(r["snapshots"] for r in res if r.get("snapshots"))
    for r in res:
        for path in r.get("slices", {}).values():
            os.unlink(path)
    return {"seconds": seconds, "curve": [(s, logloss(w[:-1], w[-1], Xt, yt)) for s, _, w in snaps]}


def first_below(curve, target):
    return next((t for t, ll in curve if ll <= target), None)


def stragglers(args, out):
    from sklearn.datasets import load_svmlight_file

    data = os.path.join(args.data, "a9a")
    X, y = load_svmlight_file(os.path.join(data, "a9a"), n_features=123)
    Xt, yt = load_svmlight_file(os.path.join(data, "a9a.t"), n_features=123)
    X, Xt, y, yt = X.tocsr(), Xt.tocsr(), (y > 0).astype(int), (yt > 0).astype(int)
    lstar = lstar_of(X, y, Xt, yt)
    base = dict(solver="sgd", alpha=ALPHA, learning_rate=0.1, batch_size=64, max_iter=args.epochs, random_state=0,
                workers=2, servers=1)
    systems = {"bsp": dict(strategy="bsp"), **{f"ssp s={s}": dict(strategy="ssp", staleness=s) for s in (1, 2, 4, 8)},
               "asp": dict(strategy="asp")}
    records = []
    for rep in range(args.reps):
        for name, extra in systems.items():
            r = ps_curve(X, y, Xt, yt, TrainConfig(**base, **extra), args.snapshot_every,
                         slow={"rank": 1, "factor": 3.0})
            rec = {"part": "stragglers", "system": name, "rep": rep, "lstar": lstar, "fit_seconds": r["seconds"],
                   "time_to_1.01": first_below(r["curve"], 1.01 * lstar), "curve": r["curve"]}
            records.append(rec)
            out.write(json.dumps(rec) + "\n")
            out.flush()
            print(f"{name} rep {rep}: {r['seconds']:.1f} s, to 1.01 L*: {rec['time_to_1.01']}", flush=True)
    _plot(records, os.path.join(args.out, "ps-stragglers.png"), lstar, "a9a, 2 workers + 1 server, worker 1 slowed 3x")
    return records, lstar


def _plot(records, path, lstar, title):
    try:
        import matplotlib
    except ImportError:  # an optional extra (pip install shardlearn[bench])
        print("matplotlib is not installed: no plot", flush=True)
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(r["system"] for r in records if r.get("curve")):
        r = next(r for r in records if r["system"] == name and r.get("curve"))
        t, ll = zip(*r["curve"])
        ax.plot(t, np.array(ll) / lstar, label=name, marker="." if len(t) < 30 else None)
    for name in dict.fromkeys(r["system"] for r in records if not r.get("curve")):
        pts = sorted((r["fit_seconds"], r["ratio"]) for r in records if r["system"] == name)
        ax.plot(*zip(*pts), label=name, marker="o", linestyle="--")
    ax.axhline(1.01, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("wall seconds")
    ax.set_ylabel("held-out log-loss / L*")
    ax.set_ylim(0.99, 1.10)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def vw_fit(train: str, test: str, yt, passes: int, bits: int = 22) -> tuple[float, float]:
    """Vowpal Wabbit (logistic loss, its default adaptive normalised updates) for ``passes``
    passes over the text file ``train``; held-out log-loss of its predictions on ``test``."""
    from vowpalwabbit import pyvw

    folder = tempfile.mkdtemp()
    model, preds = os.path.join(folder, "model.vw"), os.path.join(folder, "preds.txt")
    t = time.perf_counter()
    w = pyvw.Workspace(f"-d {train} --passes {passes} -c --cache_file {folder}/cache -k --holdout_off "
                       f"--loss_function logistic -b {bits} -f {model} --quiet")
    w.run_parser()
    w.finish()
    seconds = time.perf_counter() - t
    p = pyvw.Workspace(f"-i {model} -t -d {test} --link logistic -p {preds} --quiet")
    p.run_parser()
    p.finish()
    probs = np.clip(np.loadtxt(preds, usecols=0), 1e-15, 1 - 1e-15)
    return seconds, float(-np.mean(yt * np.log(probs) + (1 - yt) * np.log(1 - probs)))


def d2(args, out):
    from shardlearn.data.synthetic import make_d2

    X, y = make_d2(args.rows)
    Xt, yt = make_d2(args.test_rows, split="test")
    lstar = lstar_of(X, y, Xt, yt)
    print(f"D2 {args.rows} rows: L* {lstar:.5f}", flush=True)
    base = dict(solver="sgd", alpha=ALPHA, learning_rate=args.lr, batch_size=1024, max_iter=args.epochs, random_state=0,
                workers=2)
    records = []
    for name, extra in {"shardlearn ssp s=4 (2 workers)": dict(strategy="ssp", staleness=4),
                        "shardlearn asp (2 workers)": dict(strategy="asp")}.items():
        r = ps_curve(X, y, Xt, yt, TrainConfig(**base, **extra), args.snapshot_every)
        rec = {"part": "d2", "system": name, "lstar": lstar, "fit_seconds": r["seconds"],
               "time_to_1.01": first_below(r["curve"], 1.01 * lstar), "curve": r["curve"]}
        records.append(rec)
        out.write(json.dumps(rec) + "\n")
        print(f"{name}: {r['seconds']:.1f} s, to 1.01 L*: {rec['time_to_1.01']}", flush=True)
    for epochs in args.bsp_epochs:
        est = shardlearn.LogisticRegression(**dict(base, max_iter=epochs, strategy="bsp", optimizer="adagrad"))
        t = time.perf_counter()
        est.fit(X, y)
        secs = time.perf_counter() - t
        ll = logloss(est.coef_.ravel(), float(est.intercept_[0]), Xt, yt)
        rec = {"part": "d2", "system": "shardlearn allreduce bsp (2 workers)", "epochs": epochs, "fit_seconds": secs,
               "ratio": ll / lstar, "lstar": lstar}
        records.append(rec)
        out.write(json.dumps(rec) + "\n")
        print(f"allreduce bsp {epochs} epochs: {secs:.1f} s, {ll / lstar:.4f} x L*", flush=True)
    import importlib.util

    if importlib.util.find_spec("vowpalwabbit") is None:
        print("vowpalwabbit is not installed (pip install shardlearn[bench]): skipped", flush=True)
        return records, lstar
    folder = tempfile.mkdtemp()
    train, test = os.path.join(folder, "train.vw"), os.path.join(folder, "test.vw")
    write_vw(train, X, y)
    write_vw(test, Xt, yt)
    for passes in args.vw_passes:
        secs, ll = vw_fit(train, test, yt, passes)
        rec = {"part": "d2", "system": "Vowpal Wabbit", "passes": passes, "fit_seconds": secs, "ratio": ll / lstar,
               "lstar": lstar}
        records.append(rec)
        out.write(json.dumps(rec) + "\n")
        print(f"VW {passes} passes: {secs:.1f} s, {ll / lstar:.4f} x L*", flush=True)
    _plot(records, os.path.join(args.out, "ps-d2.png"), lstar, f"D2 {args.rows:,} rows, 2 workers")
    return records, lstar


def write_md(args, records, lstar, part):
    lines = [f"# Parameter server: {part}", ""]
    if part == "stragglers":
        lines += ["a9a (32,561 rows), logistic, alpha 1e-6, AdaGrad lr 0.1 on the server, batch 64, 2 workers + 1 "
                  f"server; worker 1 sleeps 2x its compute time each step (3x slower). L* = {lstar:.5f}. "
                  f"Time to the first snapshot (every {args.snapshot_every} steps of rank 0) at <= 1.01 x L*.", "",
                  f"Medians over {args.reps} repetitions (each value in brackets); the plot shows the first.", "",
                  "| system | time to 1.01 x L* (s) | whole fit (s) | final / L* |", "|---|---|---|---|"]
    else:
        lines += [f"D2, {args.rows:,} train / {args.test_rows:,} test rows, alpha 1e-6. L* = {lstar:.5f}. shardlearn: "
                  f"AdaGrad lr {args.lr}, batch 1024, 2 workers (each hosting one shard for ssp/asp; rank 0 pulls "
                  f"the whole model every {args.snapshot_every} steps for the curve, which its time includes). "
                  "Vowpal Wabbit: default learner (adaptive, normalised, invariant updates), logistic loss, 2^22 "
                  "weights, cache file; its time includes parsing the text file.", "",
                  "| system | budget | time to 1.01 x L* (s) | fit (s) | held-out / L* |", "|---|---|---|---|---|"]
    if part == "stragglers":  # medians over the repetitions, which alternate between systems
        for name in dict.fromkeys(r["system"] for r in records):
            rs = [r for r in records if r["system"] == name]
            times = [r["time_to_1.01"] for r in rs]
            ttt = "not reached" if None in times else f"{np.median(times):.2f} (" + ", ".join(f"{t:.2f}" for t in times) + ")"
            final = np.median([r["curve"][-1][1] / lstar for r in rs])
            lines.append(f"| {name} | {ttt} | {np.median([r['fit_seconds'] for r in rs]):.1f} | {final:.4f} |")
        records = []
    for r in records:
        if r.get("curve"):
            ttt = "not reached" if r["time_to_1.01"] is None else f"{r['time_to_1.01']:.2f}"
            final = r["curve"][-1][1] / lstar
            lines.append(f"| {r['system']} | {args.epochs} epochs, snapshots | {ttt} | {r['fit_seconds']:.1f} | "
                         f"{final:.4f} |")
        else:
            budget = f"{r['epochs']} epochs" if "epochs" in r else f"{r['passes']} passes"
            reached = f"{r['fit_seconds']:.1f}" if r["ratio"] <= 1.01 else "not reached"
            lines.append(f"| {r['system']} | {budget} | {reached} | {r['fit_seconds']:.1f} | {r['ratio']:.4f} |")
    fx = facts()
    lines += ["", f"![loss vs time](ps-{part}.png)", "",
              f"Machine: {fx['cpu']}, {fx['cores']} cores, {fx['memory_gib']} GiB; Python {fx['python']}, "
              f"numpy {fx['numpy']}, scipy {fx['scipy']}, scikit-learn {fx['scikit-learn']}."]
    with open(os.path.join(args.out, f"ps-{part}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("stragglers", "d2"), required=True)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--test-rows", type=int, default=200_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--snapshot-every", type=int, default=50)
    ap.add_argument("--lr", type=float, default=0.2, help="d2: AdaGrad learning rate (0.05 was too small at 2M rows)")
    ap.add_argument("--bsp-epochs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--vw-passes", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"ps-{args.part}.jsonl"), "w") as out:
        records, lstar = (stragglers if args.part == "stragglers" else d2)(args, out)
    write_md(args, records, lstar, args.part)
    return 0


if __name__ == "__main__":
    sys.exit(main())
